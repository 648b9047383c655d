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

// expandEnv replaces ${VAR} and ${VAR:-default} in the raw file text with
// values from lookup, and $$ with a single $. Any other $ is left alone, so
// that shell commands in the config keep their own $VAR and $1 for the shell.
//
// ${VAR} with VAR unset is an error rather than an empty string: a silently
// empty token or address is worse than a refusal to start. ${VAR:-default}
// uses the default when VAR is unset or empty, as the shell does; the default
// is literal text up to the first }.
//
// A ${ may not span lines. Every faulty ${…} is reported, each with its line.
func expandEnv(data []byte, lookup LookupFunc) ([]byte, error) {
	var out bytes.Buffer
	out.Grow(len(data))
	var errs []error
	line := 1
	for i := 0; i < len(data); {
		c := data[i]
		if c == '\n' {
			line++
		}
		if c != '$' || i+1 == len(data) || (data[i+1] != '$' && data[i+1] != '{') {
			out.WriteByte(c)
			i++
			continue
		}
		if data[i+1] == '$' {
			out.WriteByte('$')
			i += 2
			continue
		}
		body := data[i+2:]
		end := bytes.IndexAny(body, "}\n")
		if end < 0 || body[end] == '\n' {
			errs = append(errs, fmt.Errorf("line %d: unterminated ${ (write $${ for a literal ${)", line))
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
			errs = append(errs, fmt.Errorf("line %d: %w", line, err))
		}
		out.WriteString(value)
		i += 2 + end + 1
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out.Bytes(), nil
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
