package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Paths name a value in the config the way a user reads it:
// jobs[1].restart.max, jobs[0].env.NODE_ENV, jobs[0].env["odd.key"].

// spellPath spells a path kept as a stack of map keys (string) and list
// indexes (int).
func spellPath(steps []any) string {
	path := ""
	for _, step := range steps {
		switch step := step.(type) {
		case string:
			path = keyPath(path, step)
		case int:
			path += fmt.Sprintf("[%d]", step)
		}
	}
	return path
}

// locate turns a mapstructure field name ("jobs[0].env[NODE_ENV]") into
// pilot's path spelling ("jobs[0].env.NODE_ENV") and the steps to it in the
// decoded tree, by walking the Config type along it, and returns the type
// found there (nil if the walk fails, in which case the name is returned as
// it was, with no steps).
func locate(name string) (string, []any, reflect.Type) {
	t := reflect.TypeFor[Config]()
	var path strings.Builder
	var steps []any
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
				return name, nil, nil
			}
			steps = append(steps, rest[:end])
			if path.Len() > 0 {
				path.WriteByte('.')
			}
			path.WriteString(rest[:end])
			rest, t = rest[end:], field.Type
		case reflect.Slice:
			end := strings.IndexByte(rest, ']')
			if !strings.HasPrefix(rest, "[") || end < 0 {
				return name, nil, nil
			}
			index, err := strconv.Atoi(rest[1:end])
			if err != nil {
				return name, nil, nil
			}
			steps = append(steps, index)
			path.WriteString(rest[:end+1])
			rest, t = rest[end+1:], t.Elem()
		case reflect.Map:
			// The config's only map (env) has string values, so the key
			// runs to the final ] even if it holds brackets itself.
			if !strings.HasPrefix(rest, "[") || !strings.HasSuffix(rest, "]") {
				return name, nil, nil
			}
			key := rest[1 : len(rest)-1]
			steps = append(steps, key)
			whole := keyPath(path.String(), key)
			path.Reset()
			path.WriteString(whole)
			rest, t = "", t.Elem()
		default:
			return name, nil, nil
		}
	}
	return path.String(), steps, t
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
		if abs(len(key)-len(known)) >= bestDistance {
			continue // too far apart to be a typo, and cheap to tell
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

func abs(n int) int { return max(n, -n) }
