package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var fuzzFormats = [...]string{"yaml", "json", "toml"}

// FuzzParse feeds arbitrary documents through Parse, the one pass that
// pilot validate and pilot run use, then Validate and WithDefaults. Beyond
// never panicking, it checks that a config and an error never come
// together, that the error is the same every time and holds *FieldErrors,
// that Validate leaves the config as it was and agrees with Parse, and that
// defaults never make a valid config invalid.
func FuzzParse(f *testing.F) {
	for i, format := range fuzzFormats {
		seeds, _ := filepath.Glob("testdata/*." + format)
		for _, path := range seeds {
			data, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data, uint8(i))
		}
	}
	f.Add([]byte("jobs: [{name: ${SET_NAME}, shell: ${UNSET:-x}, env: {$$: ${}}}]"), uint8(0))
	f.Add([]byte("x-a: &a {shell: x}\njobs: [{<<: *a, name: a, every: 0s, stopSignal: 9}]\n---\nb: 1\n"), uint8(0))
	f.Add([]byte(`{"jobs": [{"name": "a", "exec": ["x"], "after": [{"job": "a"}]}]}`), uint8(1))
	f.Add([]byte("# ${X}\n[[jobs]]\nname = \"a\" # ${Y}\nshell = 'x'\n[jobs.restart]\npolicy = 1\n"), uint8(2))

	lookup := func(name string) (string, bool) {
		if strings.HasPrefix(name, "SET") {
			return "value", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte, formatIndex uint8) {
		format := fuzzFormats[int(formatIndex)%len(fuzzFormats)]
		opts := Options{Env: lookup, Check: func(c *Config) []*FieldError {
			if c == nil {
				t.Fatal("Check got no config")
			}
			return nil
		}}
		cfg, err := Parse(data, format, opts)
		again, errAgain := Parse(data, format, opts)
		if err != nil {
			if cfg != nil {
				t.Fatalf("a config came with the error %v", err)
			}
			if err.Error() == "" || errAgain == nil || err.Error() != errAgain.Error() {
				t.Fatalf("unstable or empty error:\n%v\n---\n%v", err, errAgain)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("no *FieldError in %v", err)
			}
			return
		}
		if verr := cfg.Validate(); verr != nil {
			t.Fatalf("Parse passed what Validate refuses: %v", verr)
		}
		if !reflect.DeepEqual(cfg, again) {
			t.Fatalf("Validate changed the config")
		}
		withDefaults := cfg.WithDefaults()
		if err := withDefaults.Validate(); err != nil {
			t.Fatalf("defaults made a valid config invalid: %v", err)
		}
	})
}
