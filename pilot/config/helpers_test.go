package config

import (
	"slices"
	"strings"
	"testing"
)

// env is a hermetic environment for ${VAR} expansion.
func env(vars map[string]string) LookupFunc {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

var noEnv = env(nil)

// lines splits an error into its lines; nil gives none.
func lines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func assertLines(t *testing.T, err error, want ...string) {
	t.Helper()
	if got := lines(err); !slices.Equal(got, want) {
		t.Errorf("errors:\n  got  %q\n  want %q", got, want)
	}
}

// parseYAML decodes a YAML document with no environment, failing the test
// on a decode error.
func parseYAML(t *testing.T, doc string) *Config {
	t.Helper()
	cfg, err := ParseWithEnv([]byte(doc), "yaml", noEnv)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cfg
}
