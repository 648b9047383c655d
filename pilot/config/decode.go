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
	switch got.(type) {
	case bool, int, int64, uint64, float64:
		if want == "a string" {
			msg += fmt.Sprintf(` (quote it: "%v")`, got)
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
	case reflect.Map, reflect.Struct:
		if _, ok := data.(map[string]any); !ok {
			return nil, mismatch("a map", data)
		}
	}
	return data, nil
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
	path, typ := locate(e.Name())
	msg := e.Unwrap().Error()
	// mapstructure reports a map's unknown keys in one message, joined by
	// ", "; split it so that each key gets its own line and suggestion.
	if keys, ok := strings.CutPrefix(msg, "has invalid keys: "); ok {
		for key := range strings.SplitSeq(keys, ", ") {
			p.add(path, "unknown key %q%s", key, suggest(key, typ))
		}
		return
	}
	p.add(path, "%s", msg)
}

// locate turns a mapstructure field name ("jobs[0].env[NODE_ENV]") into
// pilot's path spelling ("jobs[0].env.NODE_ENV") by walking the Config type
// along it, and returns the type found there (nil if the walk fails, in
// which case the name is returned as it was).
func locate(name string) (string, reflect.Type) {
	t := reflect.TypeFor[Config]()
	var path strings.Builder
	rest := name
	for rest != "" {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			rest = strings.TrimPrefix(rest, ".")
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			field, ok := fieldByKey(t, rest[:end])
			if !ok {
				return name, nil
			}
			if path.Len() > 0 {
				path.WriteByte('.')
			}
			path.WriteString(rest[:end])
			rest, t = rest[end:], field.Type
		case reflect.Slice:
			end := strings.IndexByte(rest, ']')
			if !strings.HasPrefix(rest, "[") || end < 0 {
				return name, nil
			}
			path.WriteString(rest[:end+1])
			rest, t = rest[end+1:], t.Elem()
		case reflect.Map:
			// The config's only map (env) has string values, so the key
			// runs to the final ] even if it holds brackets itself.
			if !strings.HasPrefix(rest, "[") || !strings.HasSuffix(rest, "]") {
				return name, nil
			}
			key := rest[1 : len(rest)-1]
			whole := keyPath(path.String(), key)
			path.Reset()
			path.WriteString(whole)
			rest, t = "", t.Elem()
		default:
			return name, nil
		}
	}
	return path.String(), t
}

// fieldByKey finds the struct field that a config key names.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("mapstructure") == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// keyPath appends a map key to a path: .KEY when the key is a plain name,
// ["KEY"] otherwise, so that a key holding dots or brackets stays readable.
func keyPath(path, key string) string {
	plain := key != ""
	for i := range len(key) {
		plain = plain && isVariableChar(key[i], i == 0)
	}
	switch {
	case !plain:
		return path + "[" + strconv.Quote(key) + "]"
	case path == "":
		return key
	default:
		return path + "." + key
	}
}

// suggest offers the known key that an unknown one was probably meant to
// be: the same name in another case (stoptimeout), or a near miss (comand).
func suggest(key string, t reflect.Type) string {
	if t == nil {
		return ""
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return ""
	}
	best, bestDistance := "", 3 // farther than two edits is no longer a typo
	for i := range t.NumField() {
		known := t.Field(i).Tag.Get("mapstructure")
		if strings.EqualFold(key, known) {
			return fmt.Sprintf(" (did you mean %q?)", known)
		}
		if d := editDistance(strings.ToLower(key), strings.ToLower(known)); d < bestDistance && d < len(known)/2+1 {
			best, bestDistance = known, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between two short strings.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt // not a typo of any config key; spare the work
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
