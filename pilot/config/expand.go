package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// LookupFunc reports the value of an environment variable and whether it is
// set; os.LookupEnv is one.
type LookupFunc func(name string) (value string, ok bool)

// expansionError is a faulty ${…}, with the number of lines that come
// before it in the text that was expanded.
type expansionError struct {
	linesBefore int
	err         error
}

// expand replaces ${VAR} and ${VAR:-default} in text with values from
// lookup, and $$ with a single $. Any other $ is left alone, so that shell
// commands in the config keep their own $VAR and $1 for the shell. The
// spans in skip (sorted, not overlapping: a TOML file's comments) are
// copied as they are.
//
// ${VAR} with VAR unset is an error rather than an empty string: a silently
// empty token or address is worse than a refusal to start. ${VAR:-default}
// uses the default when VAR is unset or empty, as the shell does; the default
// is literal text up to the first }.
//
// A ${ may not span lines. Every faulty ${…} is reported.
func expand(text []byte, lookup LookupFunc, skip [][2]int) ([]byte, []expansionError) {
	if bytes.IndexByte(text, '$') < 0 {
		return text, nil
	}
	var out bytes.Buffer
	out.Grow(len(text))
	var errs []expansionError
	line := 0
	for i := 0; i < len(text); {
		if len(skip) > 0 && i >= skip[0][0] {
			end := skip[0][1]
			line += bytes.Count(text[i:end], []byte("\n"))
			out.Write(text[i:end])
			i, skip = end, skip[1:]
			continue
		}
		c := text[i]
		if c == '\n' {
			line++
		}
		if c != '$' || i+1 == len(text) || (text[i+1] != '$' && text[i+1] != '{') {
			out.WriteByte(c)
			i++
			continue
		}
		if text[i+1] == '$' {
			out.WriteByte('$')
			i += 2
			continue
		}
		body := text[i+2:]
		end := bytes.IndexAny(body, "}\n")
		if end < 0 || body[end] == '\n' {
			errs = append(errs, expansionError{line, errors.New("unterminated ${ (write $${ for a literal ${)")})
			// Nothing on the rest of this line can close a ${: skip it, so
			// that a line full of ${ costs linear time.
			if end < 0 {
				end = len(body)
			}
			i += 2 + end
			continue
		}
		value, err := expandVariable(string(body[:end]), lookup)
		if err != nil {
			errs = append(errs, expansionError{line, err})
		}
		out.WriteString(value)
		i += 2 + end + 1
	}
	return out.Bytes(), errs
}

// expandVariable resolves the text between ${ and }.
func expandVariable(expr string, lookup LookupFunc) (string, error) {
	nameEnd := 0
	for nameEnd < len(expr) && isVariableChar(expr[nameEnd], nameEnd == 0) {
		nameEnd++
	}
	name, rest := expr[:nameEnd], expr[nameEnd:]
	switch {
	case name == "" && rest == "":
		return "", errors.New("empty ${}")
	case name == "":
		return "", fmt.Errorf("invalid variable name in ${%s}: it must start with a letter or _ and hold only letters, digits and _", expr)
	case rest == "":
		value, ok := lookup(name)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set (use ${%s:-default} to give a default)", name, name)
		}
		return value, nil
	case strings.HasPrefix(rest, ":-"):
		fallback := rest[len(":-"):]
		if strings.Contains(fallback, "${") {
			return "", fmt.Errorf("${%s}: a default cannot contain ${", expr)
		}
		if value, ok := lookup(name); ok && value != "" {
			return value, nil
		}
		return fallback, nil
	default:
		return "", fmt.Errorf("unsupported ${%s}: only ${VAR} and ${VAR:-default} are supported", expr)
	}
}

func isVariableChar(c byte, first bool) bool {
	return c == '_' || isLetter(c) || !first && '0' <= c && c <= '9'
}

// tomlComments finds the comments of a TOML document, which expansion
// leaves alone: a # outside a string, to the end of its line. It only
// lexes strings and comments; anything else is the parser's to judge.
func tomlComments(data []byte) [][2]int {
	var spans [][2]int
	for i := 0; i < len(data); {
		rest := data[i:]
		switch {
		case rest[0] == '#':
			end := bytes.IndexByte(rest, '\n')
			if end < 0 {
				end = len(rest)
			}
			spans = append(spans, [2]int{i, i + end})
			i += end
		case bytes.HasPrefix(rest, []byte(`"""`)):
			i = skipTOMLString(data, i+3, `"""`, true, false)
		case bytes.HasPrefix(rest, []byte(`'''`)):
			i = skipTOMLString(data, i+3, `'''`, false, false)
		case rest[0] == '"':
			i = skipTOMLString(data, i+1, `"`, true, true)
		case rest[0] == '\'':
			i = skipTOMLString(data, i+1, `'`, false, true)
		default:
			i++
		}
	}
	return spans
}

// skipTOMLString returns the offset just past the string that starts at i
// and ends with closing; a single-line string also ends at a newline (the
// parser reports it as unterminated).
func skipTOMLString(data []byte, i int, closing string, escapes, singleLine bool) int {
	for i < len(data) {
		switch {
		case escapes && data[i] == '\\':
			i += 2
		case singleLine && data[i] == '\n':
			return i
		case bytes.HasPrefix(data[i:], []byte(closing)):
			return i + len(closing)
		default:
			i++
		}
	}
	return len(data)
}
