package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Load reads the config file at path, in the format its extension names
// (.yaml, .yml, .json or .toml), expanding ${VAR} from pilot's environment.
// It decodes but does not validate; call Validate on the result. Every error
// line names the file.
func Load(path string) (*Config, error) {
	return LoadWithEnv(path, os.LookupEnv)
}

// LoadWithEnv is Load with ${VAR} looked up by lookup rather than in the
// process environment; a nil lookup finds no variable set.
func LoadWithEnv(path string, lookup LookupFunc) (*Config, error) {
	ext := strings.TrimPrefix(filepath.Ext(path), ".")
	if ext == "" {
		return nil, fmt.Errorf("%s: cannot tell the config format without an extension (use %s)", path, formats)
	}
	if _, err := normalizeFormat(ext); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := ParseWithEnv(data, ext, lookup)
	if err != nil {
		return nil, inFile(path, err)
	}
	return cfg, nil
}

// Parse decodes a config document in format ("yaml", "yml", "json" or
// "toml"), expanding ${VAR} from pilot's environment. It does not validate.
func Parse(data []byte, format string) (*Config, error) {
	return ParseWithEnv(data, format, os.LookupEnv)
}

// ParseWithEnv is Parse with ${VAR} looked up by lookup rather than in the
// process environment; a nil lookup finds no variable set.
func ParseWithEnv(data []byte, format string, lookup LookupFunc) (*Config, error) {
	format, err := normalizeFormat(format)
	if err != nil {
		return nil, err
	}
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	expanded, err := expandEnv(data, lookup)
	if err != nil {
		return nil, err
	}
	tree, err := parseTree(expanded, format)
	if err != nil {
		return nil, err
	}
	return decodeTree(tree)
}

// inFile prefixes each line of a (possibly joined) error with the file name,
// keeping the FieldErrors reachable through errors.As.
func inFile(path string, err error) error {
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return fmt.Errorf("%s: %w", path, err)
	}
	var errs []error
	for _, e := range joined.Unwrap() {
		errs = append(errs, inFile(path, e))
	}
	return errors.Join(errs...)
}
