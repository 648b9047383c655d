package config

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-viper/mapstructure/v2"
	"github.com/pelletier/go-toml/v2"
)

// decode fills a Config from a normalized tree. Decoding is strict: keys
// must match the documented names exactly (mapstructure would otherwise
// match them case-insensitively), unknown keys are errors, and no value is
// converted from another type — `main: "yes"` and `timeout: 5` are refused
// rather than guessed at.
//
// A value that cannot be decoded does not stop the rest: it is reported,
// then left out (as if the file had not set it) and the tree decoded again,
// so that the Config that comes back holds everything that could be read
// and can be validated for the problems beyond. undecoded are the paths of
// the values left out. decode changes tree.
func decode(tree map[string]any) (cfg *Config, found []decodeFailure, undecoded []string) {
	seen := map[string]bool{}
	// A second decoding cannot fail on what the first reported; the third
	// is a bound, not an expectation.
	for range 3 {
		cfg = &Config{}
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			Result:           cfg,
			ErrorUnused:      true,
			WeaklyTypedInput: false,
			MatchName:        func(key, field string) bool { return key == field },
			DecodeHook:       mapstructure.DecodeHookFuncValue(strictValue),
		})
		if err != nil {
			panic(err) // only for an invalid DecoderConfig, which is fixed above
		}
		err = dec.Decode(tree)
		if err == nil {
			break
		}
		for _, f := range decodeFailures(err) {
			if key := f.unknownKey; key != "" {
				deleteAt(tree, f.steps, key)
			} else {
				setNilAt(tree, f.steps)
				undecoded = append(undecoded, f.problem.Path)
			}
			if msg := f.problem.Error(); !seen[msg] {
				seen[msg] = true
				found = append(found, f)
			}
		}
	}
	return cfg, found, undecoded
}

// setNilAt replaces the value at steps with nil, which mapstructure decodes
// as an absent value: the zero value, with no error.
func setNilAt(tree map[string]any, steps []any) {
	if len(steps) == 0 {
		return // the whole document: never refused by the decoder
	}
	parent, last := walkTree(tree, steps)
	switch c := parent.(type) {
	case map[string]any:
		if key, ok := last.(string); ok {
			c[key] = nil
		}
	case []any:
		if i, ok := last.(int); ok && i < len(c) {
			c[i] = nil
		}
	}
}

// deleteAt removes key from the map at steps.
func deleteAt(tree map[string]any, steps []any, key string) {
	m := any(tree)
	if len(steps) > 0 {
		parent, last := walkTree(tree, steps)
		m = child(parent, last)
	}
	if m, ok := m.(map[string]any); ok {
		delete(m, key)
	}
}

// walkTree returns the container that holds the value at steps, and the
// last step, the value's key or index in it.
func walkTree(tree map[string]any, steps []any) (parent, last any) {
	var at any = tree
	for _, step := range steps[:len(steps)-1] {
		at = child(at, step)
	}
	return at, steps[len(steps)-1]
}

func child(container, step any) any {
	switch c := container.(type) {
	case map[string]any:
		if key, ok := step.(string); ok {
			return c[key]
		}
	case []any:
		if i, ok := step.(int); ok && i < len(c) {
			return c[i]
		}
	}
	return nil
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
// mapstructure sees it, converts duration strings, checks integers, and
// has the types that read their own text (signals, sizes, enums) read it.
// It replaces mapstructure's own conversions, which would take `timeout: 5`
// as 5ns and `max: 1.5` as 1.
func strictValue(from, to reflect.Value) (any, error) {
	data := from.Interface()
	t := to.Type()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[Instances]() {
		return toInstances(data)
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		return fromText(data, t)
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

// fromText decodes a value of a type that parses its own text (a signal,
// a size, an enum). An integer or a boolean is read as its text, which is
// exactly what was written, so that `stopSignal: 15` or `policy: true`
// gets the type's own message ("unknown signal", "must be one of").
func fromText(data any, t reflect.Type) (any, error) {
	var text string
	switch v := data.(type) {
	case string:
		text = v
	case int, int64, uint64, bool:
		text = fmt.Sprint(v)
	default:
		return nil, mismatch("a string", data)
	}
	v := reflect.New(t)
	if err := v.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(text)); err != nil {
		return nil, &typeError{err.Error()}
	}
	return v.Elem().Interface(), nil
}

const durationHint = "use 5s, 500ms"

// durationSyntax is what time.ParseDuration reads; a string of this shape
// that it refuses is out of range. Compiled at first use: only an error
// needs it.
var durationSyntax = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[-+]?((\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$`)
})

// maxDuration spells the longest duration, rounded down to whole hours.
var maxDuration = fmt.Sprintf("%dh", math.MaxInt64/int64(time.Hour))

func toDuration(data any) (time.Duration, error) {
	switch v := data.(type) {
	case string:
		d, err := time.ParseDuration(v)
		switch {
		case err != nil && durationSyntax().MatchString(v):
			return 0, &typeError{fmt.Sprintf("%s is out of range (at most %s)", quote(v), maxDuration)}
		case err != nil:
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

// toInstances reads a number of instances: an integer (a float with no
// fraction, as JSON has only floats), "auto", or the text of a number,
// which is what a quoted ${N} becomes.
func toInstances(data any) (Instances, error) {
	got := describe(data)
	switch v := data.(type) {
	case string:
		if v == "auto" {
			return Instances{Auto: true}, nil
		}
		if n, err := strconv.Atoi(v); err == nil && n >= 1 && n <= MaxInstances {
			return Instances{N: n}, nil
		}
		got = quote(v)
	case int, int64, uint64, float64:
		if n, err := toInt(v); err == nil && n >= 1 && n <= MaxInstances {
			return Instances{N: n}, nil
		}
		got = fmt.Sprint(v)
	}
	return Instances{}, &typeError{instancesProblem(got)}
}

// instancesProblem is the one message for a bad instances value, got as
// the file wrote it.
func instancesProblem(got string) string {
	return fmt.Sprintf(`must be a whole number from 1 to %d or "auto", got %s`, MaxInstances, got)
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

// decodeFailure is one value mapstructure refused: the problem, where the
// value is in the tree, and for an unknown key, the key.
type decodeFailure struct {
	problem    *FieldError
	steps      []any
	unknownKey string
}

// decodeFailures walks mapstructure's error tree and turns each leaf into
// a failure with pilot's path spelling.
func decodeFailures(err error) []decodeFailure {
	switch e := err.(type) {
	case *mapstructure.DecodeError:
		return decodeErrorFailures(e)
	case interface{ Unwrap() []error }:
		var out []decodeFailure
		for _, inner := range e.Unwrap() {
			out = append(out, decodeFailures(inner)...)
		}
		return out
	case interface{ Unwrap() error }: // "decoding failed due to…" wraps the list
		return decodeFailures(e.Unwrap())
	default:
		return []decodeFailure{{problem: &FieldError{Message: err.Error()}}}
	}
}

func decodeErrorFailures(e *mapstructure.DecodeError) []decodeFailure {
	// mapstructure names the root by its Go type when the top level has
	// unknown keys (with a pointer field in Config); the path there is "".
	path, steps, typ := locate(strings.TrimPrefix(e.Name(), reflect.TypeFor[Config]().String()))
	msg := e.Unwrap().Error()
	// mapstructure reports a map's unknown keys in one message, joined by
	// ", "; split it so that each key gets its own line and suggestion.
	if keys, ok := strings.CutPrefix(msg, "has invalid keys: "); ok {
		var out []decodeFailure
		for key := range strings.SplitSeq(keys, ", ") {
			out = append(out, decodeFailure{
				problem:    &FieldError{Path: path, Message: fmt.Sprintf("unknown key %s%s", quote(key), suggest(key, typ))},
				steps:      steps,
				unknownKey: key,
			})
		}
		return out
	}
	return []decodeFailure{{problem: &FieldError{Path: path, Message: msg}, steps: steps}}
}
