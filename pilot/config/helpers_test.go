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

// decodeOnly parses and decodes a document without validating it, for the
// tests of reading and decoding. Its problems name their lines.
func decodeOnly(data []byte, format string, lookup LookupFunc) (*Config, error) {
	format, err := normalizeFormat(format)
	if err != nil {
		return nil, err
	}
	src, found := parse(data, format, lookup)
	if src == nil {
		sortProblems(found)
		return nil, joinProblems(found)
	}
	dropExtensions(src.tree)
	cfg, failures, _ := decode(src.tree)
	for _, f := range failures {
		found = append(found, f.problem)
	}
	if len(found) > 0 {
		sortProblems(found)
		return nil, joinProblems(found)
	}
	return cfg, nil
}

// decodeYAML decodes a YAML document with no environment, failing the test
// on a decode error.
func decodeYAML(t *testing.T, doc string) *Config {
	t.Helper()
	cfg, err := decodeOnly([]byte(doc), "yaml", noEnv)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return cfg
}

// check runs the one pass on a YAML document with no environment.
func checkYAML(doc string) (*Config, error) {
	return Parse([]byte(doc), "yaml", Options{Env: noEnv})
}
