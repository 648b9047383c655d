package custom

import (
	"errors"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		in   string
		want Sample
	}{
		{"queue_depth 3", Sample{Name: "queue_depth", Value: 3}},
		{"  a:b_c\t-2.5  ", Sample{Name: "a:b_c", Value: -2.5}},
		{"x 1e3", Sample{Name: "x", Value: 1000}},
		{"x 1E-3", Sample{Name: "x", Value: 0.001}},
		{"x .5", Sample{Name: "x", Value: 0.5}},
		{"x 5.", Sample{Name: "x", Value: 5}},
		{"x +7", Sample{Name: "x", Value: 7}},
		{"x +Inf", Sample{Name: "x", Value: math.Inf(1)}},
		{"x -Inf", Sample{Name: "x", Value: math.Inf(-1)}},
		{"x Inf", Sample{Name: "x", Value: math.Inf(1)}},
		{`q{queue="mail"} 4`, Sample{Name: "q", Labels: map[string]string{"queue": "mail"}, Value: 4}},
		{`q{queue="mail",result="ok",} 4`, Sample{Name: "q", Labels: map[string]string{"queue": "mail", "result": "ok"}, Value: 4}},
		{`q{ queue = "mail" , result="ok" } 4`, Sample{Name: "q", Labels: map[string]string{"queue": "mail", "result": "ok"}, Value: 4}},
		{`q{} 4`, Sample{Name: "q", Labels: map[string]string{}, Value: 4}},
		{`q{path="a \"b\" \\ c\nd"} 1`, Sample{Name: "q", Labels: map[string]string{"path": "a \"b\" \\ c\nd"}, Value: 1}},
		{"q{v=\"{}, =\t#\"} 1", Sample{Name: "q", Labels: map[string]string{"v": "{}, =\t#"}, Value: 1}},
		{`q{v="ünïcødé ✓"} 1`, Sample{Name: "q", Labels: map[string]string{"v": "ünïcødé ✓"}, Value: 1}},
		{`q{v=""} 1`, Sample{Name: "q", Labels: map[string]string{"v": ""}, Value: 1}},
	}
	for _, tt := range tests {
		got, err := ParseLine([]byte(tt.in))
		if err != nil {
			t.Errorf("ParseLine(%q): %v", tt.in, err)
			continue
		}
		if !sameSample(got, tt.want) {
			t.Errorf("ParseLine(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	nan, err := ParseLine([]byte("x NaN"))
	if err != nil || !math.IsNaN(nan.Value) {
		t.Errorf("NaN: %+v, %v", nan, err)
	}
}

func TestParseLineRejects(t *testing.T) {
	tests := []struct {
		in   string
		want string // substring of the error
	}{
		{"", "empty line"},
		{"   ", "empty line"},
		{"queue_depth", `want a value after "queue_depth"`},
		{"queue_depth ", `want a value`},
		{"9lives 1", "want a metric name"},
		{"{a=\"b\"} 1", "want a metric name"},
		{"x=1", `want a blank and a value after the name, found '='`},
		{"x 1 1700000000", "timestamps are not supported"},
		{"x 1 # comment", "unexpected '#'"},
		{"x one", `value "one" is not a number`},
		{"x 0x10", `value "0x10" is not a number`},
		{"x 1_000", `is not a number`},
		{"x infinity", `is not a number`},
		{"x 1e400", "out of range"},
		{"x 1.2.3", "is not a number"},
		{`x{a="b" 1`, `want ',' or '}' after label "a"`},
		{`x{a="b"`, `want ',' or '}'`},
		{`x{a=b} 1`, `want '"' to open the value of label "a", found 'b'`},
		{`x{a "b"} 1`, `want '=' after label "a"`},
		{`x{a="b} 1`, `unterminated value of label "a"`},
		{`x{a="b\`, `unterminated value of label "a"`},
		{`x{a="\t"} 1`, `invalid escape \t in the value of label "a"`},
		{`x{a="1",a="2"} 1`, `label "a" appears twice`},
		{`x{9a="1"} 1`, "want a label name or '}'"},
		{`x{,} 1`, "want a label name"},
		{`x{a="1",,} 1`, "want a label name"},
		{`x{a:b="1"} 1`, `want '=' after label "a", found ':'`},
		{"x{a=\"\xff\"} 1", "not valid UTF-8"},
		{`x{a="1"}1`, "want a blank and a value"},
		{"# HELP x y", "want a metric name"},
	}
	for _, tt := range tests {
		_, err := ParseLine([]byte(tt.in))
		if err == nil {
			t.Errorf("ParseLine(%q) succeeded", tt.in)
			continue
		}
		var le *LineError
		if !errors.As(err, &le) || le.Line != tt.in {
			t.Errorf("ParseLine(%q): error %v does not carry the line", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "line ") {
			t.Errorf("ParseLine(%q) = %q, want it to contain %q", tt.in, err, tt.want)
		}
	}
	// A long line is cut in the error.
	long := "x " + strings.Repeat("9", 500) + "z"
	if _, err := ParseLine([]byte(long)); err == nil || len(err.Error()) > 300 {
		t.Errorf("long line error: %v", err)
	}
}

func TestSkippable(t *testing.T) {
	for in, want := range map[string]bool{"": true, " \t": true, "# HELP x y": true, "  # TYPE x gauge": true, "x 1": false, " x": false} {
		if got := Skippable([]byte(in)); got != want {
			t.Errorf("Skippable(%q) = %v", in, got)
		}
	}
}

func TestFormatRoundTrip(t *testing.T) {
	for _, s := range []Sample{
		{Name: "x", Value: 1},
		{Name: "x", Value: 1e-300},
		{Name: "x", Value: math.Inf(-1)},
		{Name: "x", Labels: map[string]string{"b": `"q"\` + "\n", "a": ""}, Value: -0.25},
	} {
		line := Format(s)
		got, err := ParseLine([]byte(line))
		if err != nil || !sameSample(got, s) {
			t.Errorf("Format(%+v) = %q, parsed back as %+v, %v", s, line, got, err)
		}
	}
	if got := Format(Sample{Name: "q", Labels: map[string]string{"z": "1", "a": `"`}, Value: 2}); got != `q{a="\"",z="1"} 2` {
		t.Errorf("Format = %s", got)
	}
}

func sameSample(a, b Sample) bool {
	sameValue := a.Value == b.Value || math.IsNaN(a.Value) && math.IsNaN(b.Value)
	return a.Name == b.Name && sameValue && maps.Equal(a.Labels, b.Labels) && (a.Labels == nil) == (b.Labels == nil)
}

// Format writes s back as a sensor line (labels sorted by name), the
// inverse of ParseLine.
func Format(s Sample) string {
	var b strings.Builder
	b.WriteString(s.Name)
	if len(s.Labels) > 0 {
		b.WriteByte('{')
		for i, k := range slices.Sorted(maps.Keys(s.Labels)) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(k)
			b.WriteString(`="`)
			b.WriteString(labelEscaper.Replace(s.Labels[k]))
			b.WriteByte('"')
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatFloat(s.Value, 'g', -1, 64))
	return b.String()
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
