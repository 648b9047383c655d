package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var fuzzFormats = [...]string{"yaml", "json", "toml"}

// FuzzParse feeds arbitrary documents through Parse, Validate and
// WithDefaults. Beyond never panicking, it checks that an error comes alone
// and is the same every time, that Validate leaves the config as it was,
// and that defaults never make a valid config invalid.
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
	f.Add([]byte(`{"jobs": [{"name": "a", "exec": ["x"], "after": [{"job": "a"}]}]}`), uint8(1))

	lookup := func(name string) (string, bool) {
		if strings.HasPrefix(name, "SET") {
			return "value", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte, formatIndex uint8) {
		format := fuzzFormats[int(formatIndex)%len(fuzzFormats)]
		cfg, err := ParseWithEnv(data, format, lookup)
		again, errAgain := ParseWithEnv(data, format, lookup)
		if err != nil {
			if cfg != nil {
				t.Fatalf("a config came with the error %v", err)
			}
			if err.Error() == "" || errAgain == nil || err.Error() != errAgain.Error() {
				t.Fatalf("unstable or empty error:\n%v\n---\n%v", err, errAgain)
			}
			return
		}
		verr := cfg.Validate()
		if !reflect.DeepEqual(cfg, again) {
			t.Fatalf("Validate changed the config")
		}
		if verr != nil {
			if again.Validate().Error() != verr.Error() {
				t.Fatalf("unstable validation errors")
			}
			return
		}
		withDefaults := cfg.WithDefaults()
		if err := withDefaults.Validate(); err != nil {
			t.Fatalf("defaults made a valid config invalid: %v", err)
		}
	})
}
