package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-viper/mapstructure/v2"
	"github.com/pelletier/go-toml/v2"
)

// decodeTree fills a Config from a normalized tree. Decoding is strict:
// keys must match the documented names exactly (mapstructure would otherwise
// match them case-insensitively), unknown keys are errors, and no value is
// converted from another type — `main: "yes"` and `timeout: 5` are refused
// rather than guessed at.
func decodeTree(tree map[string]any) (*Config, error) {
	var cfg Config
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           &cfg,
		ErrorUnused:      true,
		WeaklyTypedInput: false,
		MatchName:        func(key, field string) bool { return key == field },
		DecodeHook:       mapstructure.DecodeHookFuncValue(strictValue),
	})
	if err != nil {
		return nil, err // only for an invalid DecoderConfig, which is fixed above
	}
	if err := dec.Decode(tree); err != nil {
		var p problems
		collectDecodeErrors(err, &p)
		return nil, p.err()
	}
	return &cfg, nil
}

// typeError is a value of the wrong type, reported by strictValue.
type typeError struct{ msg string }

func (e *typeError) Error() string { return e.msg }

func mismatch(want string, got any) error {
	msg := fmt.Sprintf("expected %s, got %s", want, describe(got))
	if want == "a string" {
		switch got.(type) {
		case bool, int, int64, uint64:
			msg += fmt.Sprintf(` (quote it: "%v")`, got)
		case float64, time.Time, toml.LocalDate, toml.LocalDateTime, toml.LocalTime:
			msg += " (quote it to keep it as written)"
		}
	}
	return &typeError{msg}
}

// strictValue is the decode hook that checks each value's type before
// mapstructure sees it, converts duration strings, and checks integers. It
// replaces mapstructure's own conversions, which would take `timeout: 5` as
// 5ns and `max: 1.5` as 1.
func strictValue(from, to reflect.Value) (any, error) {
	data := from.Interface()
	t := to.Type()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[time.Duration]() {
		return toDuration(data)
	}
	switch t.Kind() {
	case reflect.Bool:
		if _, ok := data.(bool); !ok {
			return nil, mismatch("a boolean", data)
		}
	case reflect.String:
		if _, ok := data.(string); !ok {
			return nil, mismatch("a string", data)
		}
	case reflect.Int:
		return toInt(data)
	case reflect.Slice:
		if _, ok := data.([]any); !ok {
			return nil, mismatch("a list", data)
		}
	case reflect.Map:
		m, ok := data.(map[string]any)
		if !ok {
			return nil, mismatch("a map", data)
		}
		if t.Elem().Kind() == reflect.String {
			return exactScalarsAsText(m), nil
		}
	case reflect.Struct:
		if _, ok := data.(map[string]any); !ok {
			return nil, mismatch("a map", data)
		}
	}
	return data, nil
}

// exactScalarsAsText lets a map of strings (env) take integers and booleans,
// as their text: `PORT: 3000`, and `PORT: ${PORT:-3000}` after expansion,
// are too common to refuse, and their text is exactly what was written.
// Floats and dates stay errors, since the parser has already changed them
// (1.10 became 1.1).
func exactScalarsAsText(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch v.(type) {
		case int, int64, uint64, bool:
			out[k] = fmt.Sprint(v)
		default:
			out[k] = v
		}
	}
	return out
}

const durationHint = "use 5s, 500ms"

func toDuration(data any) (time.Duration, error) {
	switch v := data.(type) {
	case string:
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, &typeError{fmt.Sprintf("%s is not a duration (%s)", quote(v), durationHint)}
		}
		return d, nil
	case int, int64, uint64, float64:
		return 0, &typeError{fmt.Sprintf("%v is not a duration (%s)", v, durationHint)}
	default:
		return 0, mismatch("a duration ("+durationHint+")", data)
	}
}

func toInt(data any) (int, error) {
	switch v := data.(type) {
	case int:
		return v, nil
	case int64:
		if int64(int(v)) == v {
			return int(v), nil
		}
	case uint64:
		if v <= math.MaxInt {
			return int(v), nil
		}
	case float64: // JSON has only floats
		if v == math.Trunc(v) && v >= math.MinInt && v < -float64(math.MinInt) {
			return int(v), nil
		}
	}
	return 0, mismatch("an integer", data)
}

// describe names a decoded value's type, and shows scalars, for messages.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "string " + quote(v)
	case bool:
		return fmt.Sprintf("boolean %t", v)
	case int, int64, uint64, float64:
		return fmt.Sprintf("number %v", v)
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a map"
	case time.Time, toml.LocalDate, toml.LocalDateTime, toml.LocalTime:
		return fmt.Sprintf("date/time %v", v)
	default:
		return quote(fmt.Sprint(v))
	}
}

// quote quotes a value for a message, cut short so that a long value (a
// secret that landed in the wrong key, say) does not flood the output.
func quote(s string) string {
	const limit = 40
	if utf8.RuneCountInString(s) <= limit {
		return strconv.Quote(s)
	}
	return strconv.Quote(string([]rune(s)[:limit])) + "…"
}

// collectDecodeErrors walks mapstructure's error tree and turns each leaf
// into a FieldError with pilot's path spelling.
func collectDecodeErrors(err error, p *problems) {
	switch e := err.(type) {
	case *mapstructure.DecodeError:
		addDecodeError(e, p)
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			collectDecodeErrors(inner, p)
		}
	case interface{ Unwrap() error }: // "decoding failed due to…" wraps the list
		collectDecodeErrors(e.Unwrap(), p)
	default:
		p.add("", "%s", err)
	}
}

func addDecodeError(e *mapstructure.DecodeError, p *problems) {
	// mapstructure names the root by its Go type when the top level has
	// unknown keys (with a pointer field in Config); the path there is "".
	path, typ := locate(strings.TrimPrefix(e.Name(), reflect.TypeFor[Config]().String()))
	msg := e.Unwrap().Error()
	// mapstructure reports a map's unknown keys in one message, joined by
	// ", "; split it so that each key gets its own line and suggestion.
	if keys, ok := strings.CutPrefix(msg, "has invalid keys: "); ok {
		for key := range strings.SplitSeq(keys, ", ") {
			p.add(path, "unknown key %s%s", quote(key), suggest(key, typ))
		}
		return
	}
	p.add(path, "%s", msg)
}
