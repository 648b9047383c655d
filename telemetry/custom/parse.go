package custom

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Sample is one parsed sensor line.
type Sample struct {
	Name   string
	Labels map[string]string // nil when the line has none
	Value  float64
}

// LineError is a sensor line that is not a sample. Its message quotes the
// line (cut to 120 bytes) and says what was wrong where.
type LineError struct {
	Line string // the line, cut to 120 bytes
	Pos  int    // byte offset of the fault
	Msg  string
}

func (e *LineError) Error() string {
	return fmt.Sprintf("line %q: at byte %d: %s", e.Line, e.Pos, e.Msg)
}

// maxQuotedLine is how much of a bad line an error quotes.
const maxQuotedLine = 120

// Skippable reports whether a sensor line carries no sample: empty, blank,
// or a # comment (such as # HELP and # TYPE), all of which Sensor ignores.
func Skippable(line []byte) bool {
	i := skipBlank(line, 0)
	return i == len(line) || line[i] == '#'
}

// ParseLine parses one sample in the syntax of Prometheus's text format:
//
//	name value
//	name{label="v",other="w"} value
//
// Blanks (spaces, tabs) may surround the tokens; a trailing comma inside
// the braces is allowed; label values escape \\, \" and \n as in the text
// format and must be valid UTF-8; a label may not appear twice. The value
// is a float as Prometheus writes it (1, -2.5, 1e3, NaN, +Inf, -Inf). A
// timestamp after the value is refused: pilot stamps samples when it
// scrapes them. Empty and comment lines are errors here (see Skippable).
func ParseLine(line []byte) (Sample, error) {
	p := parser{line: line}
	s, err := p.sample()
	if err != nil {
		quoted := line
		if len(quoted) > maxQuotedLine {
			quoted = quoted[:maxQuotedLine]
		}
		msg := err.Error()
		if len(msg) > 2*maxQuotedLine { // a huge name quoted in it
			msg = msg[:2*maxQuotedLine] + "…"
		}
		return Sample{}, &LineError{Line: string(quoted), Pos: p.pos, Msg: msg}
	}
	return s, nil
}

type parser struct {
	line []byte
	pos  int
}

func (p *parser) sample() (Sample, error) {
	var s Sample
	p.pos = skipBlank(p.line, p.pos)
	if p.pos == len(p.line) {
		return s, fmt.Errorf("empty line: want a sample, name value")
	}
	name := p.name(isMetricNameStart, isMetricNameChar)
	if name == "" {
		return s, fmt.Errorf("want a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), found %s", p.found())
	}
	s.Name = name
	if p.pos < len(p.line) && p.line[p.pos] == '{' {
		p.pos++
		labels, err := p.labels()
		if err != nil {
			return s, err
		}
		s.Labels = labels
	}
	start := p.pos
	p.pos = skipBlank(p.line, p.pos)
	if p.pos == len(p.line) {
		return s, fmt.Errorf("want a value after %q", s.Name)
	}
	if p.pos == start {
		return s, fmt.Errorf("want a blank and a value after the name, found %s", p.found())
	}
	valStart := p.pos
	for p.pos < len(p.line) && !isBlank(p.line[p.pos]) {
		p.pos++
	}
	text := string(p.line[valStart:p.pos])
	v, err := parseValue(text)
	if err != nil {
		p.pos = valStart
		return s, err
	}
	s.Value = v
	p.pos = skipBlank(p.line, p.pos)
	if p.pos < len(p.line) {
		return s, fmt.Errorf("unexpected %s after the value (timestamps are not supported)", p.found())
	}
	return s, nil
}

// labels parses what follows '{' up to and including '}'.
func (p *parser) labels() (map[string]string, error) {
	labels := map[string]string{}
	for {
		p.pos = skipBlank(p.line, p.pos)
		if p.pos < len(p.line) && p.line[p.pos] == '}' {
			p.pos++
			return labels, nil
		}
		name := p.name(isLabelNameStart, isLabelNameChar)
		if name == "" {
			return nil, fmt.Errorf("want a label name or '}', found %s", p.found())
		}
		if _, dup := labels[name]; dup {
			p.pos -= len(name)
			return nil, fmt.Errorf("label %q appears twice", name)
		}
		p.pos = skipBlank(p.line, p.pos)
		if !p.take('=') {
			return nil, fmt.Errorf("want '=' after label %q, found %s", name, p.found())
		}
		p.pos = skipBlank(p.line, p.pos)
		if !p.take('"') {
			return nil, fmt.Errorf("want '\"' to open the value of label %q, found %s", name, p.found())
		}
		value, err := p.quoted(name)
		if err != nil {
			return nil, err
		}
		labels[name] = value
		p.pos = skipBlank(p.line, p.pos)
		switch {
		case p.take(','):
		case p.pos < len(p.line) && p.line[p.pos] == '}':
		default:
			return nil, fmt.Errorf("want ',' or '}' after label %q, found %s", name, p.found())
		}
	}
}

// quoted reads a label value up to its closing quote.
func (p *parser) quoted(label string) (string, error) {
	start := p.pos
	var b strings.Builder
	for p.pos < len(p.line) {
		c := p.line[p.pos]
		switch c {
		case '"':
			p.pos++
			v := b.String()
			if !utf8.ValidString(v) {
				p.pos = start
				return "", fmt.Errorf("the value of label %q is not valid UTF-8", label)
			}
			return v, nil
		case '\\':
			if p.pos+1 == len(p.line) {
				return "", fmt.Errorf("unterminated value of label %q", label)
			}
			switch e := p.line[p.pos+1]; e {
			case '\\', '"':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			default:
				return "", fmt.Errorf("invalid escape \\%c in the value of label %q (want \\\\, \\\" or \\n)", e, label)
			}
			p.pos += 2
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
	return "", fmt.Errorf("unterminated value of label %q", label)
}

func (p *parser) name(start, char func(byte) bool) string {
	i := p.pos
	if i == len(p.line) || !start(p.line[i]) {
		return ""
	}
	for i++; i < len(p.line) && char(p.line[i]); i++ {
	}
	n := string(p.line[p.pos:i])
	p.pos = i
	return n
}

func (p *parser) take(c byte) bool {
	if p.pos < len(p.line) && p.line[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

// found describes what is at the current position, for errors.
func (p *parser) found() string {
	if p.pos >= len(p.line) {
		return "the end of the line"
	}
	r, _ := utf8.DecodeRune(p.line[p.pos:])
	return strconv.QuoteRune(r)
}

// decimalRE is a decimal float: what Prometheus writes besides NaN and Inf.
// It is compiled at first use, not at start: most pilots read no sensor.
var decimalRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`)
})

// parseValue reads a float as Prometheus's text format writes one. Go's
// ParseFloat also takes hex floats, "infinity" and digit separators;
// those are refused, as Prometheus writes none of them.
func parseValue(text string) (float64, error) {
	switch strings.ToLower(text) {
	case "nan":
		return math.NaN(), nil
	case "inf", "+inf":
		return math.Inf(1), nil
	case "-inf":
		return math.Inf(-1), nil
	}
	if decimalRE().MatchString(text) {
		// The only error left is out of range (±Inf): refused too, as the
		// line almost surely meant something else.
		if v, err := strconv.ParseFloat(text, 64); err == nil {
			return v, nil
		}
		return 0, fmt.Errorf("value %q is out of range", clip(text))
	}
	return 0, fmt.Errorf("value %q is not a number (want e.g. 1, -2.5, 1e3, NaN, +Inf, -Inf)", clip(text))
}

// clip cuts a token quoted in an error.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func skipBlank(line []byte, i int) int {
	for i < len(line) && isBlank(line[i]) {
		i++
	}
	return i
}

func isMetricNameStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':'
}
func isMetricNameChar(c byte) bool { return isMetricNameStart(c) || c >= '0' && c <= '9' }
func isLabelNameStart(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
func isLabelNameChar(c byte) bool  { return isLabelNameStart(c) || c >= '0' && c <= '9' }

func validMetricName(s string) bool { return validName(s, isMetricNameStart, isMetricNameChar) }
func validLabelName(s string) bool  { return validName(s, isLabelNameStart, isLabelNameChar) }

func validName(s string, start, char func(byte) bool) bool {
	if s == "" || !start(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !char(s[i]) {
			return false
		}
	}
	return true
}
