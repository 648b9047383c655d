package custom

import (
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseLine: whatever the line, ParseLine never panics; an error is a
// *LineError quoting (a prefix of) the line; a sample has valid names and
// UTF-8 label values, and Format gives a line that parses back to it.
func FuzzParseLine(f *testing.F) {
	for _, seed := range []string{
		"queue_depth 3", `q{queue="mail",result="ok",} 4`, `q{path="a \"b\" \\ c\nd"} 1`,
		"x NaN", "x -Inf", "x 1e3", `x{a="b"`, "x 1 17000", "", "# HELP x", "x{a=\"\xff\"} 1",
		"\t a:b { c = \"d\" } +.5e-3 ",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		s, err := ParseLine(line)
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) || !strings.HasPrefix(string(line), le.Line) || le.Pos < 0 || le.Pos > len(line) {
				t.Fatalf("ParseLine(%q): error %#v", line, err)
			}
			return
		}
		if !validMetricName(s.Name) {
			t.Fatalf("ParseLine(%q): name %q", line, s.Name)
		}
		for k, v := range s.Labels {
			if !validLabelName(k) || !utf8.ValidString(v) {
				t.Fatalf("ParseLine(%q): label %q=%q", line, k, v)
			}
		}
		if Skippable(line) {
			t.Fatalf("ParseLine(%q) parsed a skippable line", line)
		}
		again, err := ParseLine([]byte(Format(s)))
		if err != nil {
			t.Fatalf("Format(%+v) = %q does not parse: %v", s, Format(s), err)
		}
		if len(s.Labels) == 0 && again.Labels == nil {
			again.Labels = s.Labels // "x{} 1" formats as "x 1"
		}
		if !sameSample(again, s) {
			t.Fatalf("round trip of %q: %+v became %+v", line, s, again)
		}
		if math.IsInf(s.Value, 0) && !strings.Contains(strings.ToLower(string(line)), "inf") {
			t.Fatalf("ParseLine(%q) overflowed to %v", line, s.Value)
		}
	})
}
