package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MaxFileSize caps a config file. A real config is a few kilobytes; a
// file far larger is the wrong file, and reading it whole would cost
// seconds and hundreds of megabytes before saying so.
const MaxFileSize = 1 << 20

// Options tune Load and Parse.
type Options struct {
	// Env looks up ${VAR}; nil means pilot's own environment
	// (os.LookupEnv).
	Env LookupFunc
	// Check, when set, is run on the decoded config, valid or not, and
	// the problems it returns are reported with the config's own. pilot
	// passes its checks of the machine (users, files, interfaces), which
	// this package, reading nothing but the config, does not make. A
	// problem Check returns for a value that is already reported, or that
	// could not be decoded, is left out.
	Check func(*Config) []*FieldError
}

// Load reads the config file at path, in the format its extension names
// (.yaml, .yml, .json or .toml), and checks it: decoding, validation and
// opts.Check, in one pass. It returns the config, or an error that lists
// every problem found, one per line, in the order of the file; each is a
// *FieldError naming the file, the line where known, and the path. The
// config is returned as written: call WithDefaults on it.
func Load(path string, opts Options) (*Config, error) {
	ext := strings.TrimPrefix(filepath.Ext(path), ".")
	if ext == "" {
		return nil, &FieldError{File: path, Message: fmt.Sprintf("cannot tell the config format without an extension (use %s)", formats)}
	}
	format, err := normalizeFormat(ext)
	if err != nil {
		return nil, &FieldError{File: path, Message: err.Error()}
	}
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	cfg, found := check(data, format, opts)
	for _, e := range found {
		e.File = path
	}
	return cfg, joinProblems(found)
}

// readFile reads a config file, refusing one larger than MaxFileSize
// without reading it whole.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, &FieldError{File: path, Message: tooBig}
	}
	return data, nil
}

var tooBig = fmt.Sprintf("larger than %d MiB, the most a config file may hold: is it the right file?", MaxFileSize>>20)

// Parse checks a config document in format ("yaml", "yml", "json" or
// "toml") as Load checks a file; its problems name no file.
func Parse(data []byte, format string, opts Options) (*Config, error) {
	format, err := normalizeFormat(format)
	if err != nil {
		return nil, err
	}
	cfg, found := check(data, format, opts)
	return cfg, joinProblems(found)
}

// check is the one pass: parse (with ${VAR} expansion), decode, validate,
// opts.Check. A problem in one step does not hide those of the next: a
// value that cannot be decoded is reported and left out, and the rest goes
// on. The problems come back in the order of the file, with the config
// only when there are none.
func check(data []byte, format string, opts Options) (*Config, []*FieldError) {
	if len(data) > MaxFileSize {
		return nil, []*FieldError{{Message: tooBig}}
	}
	lookup := opts.Env
	if lookup == nil {
		lookup = os.LookupEnv
	}
	src, found := parse(data, format, lookup)
	if src == nil {
		sortProblems(found)
		return nil, found
	}
	dropExtensions(src.tree)
	written := map[string]bool{}
	notePaths(nil, src.tree, written)
	cfg, failures, undecoded := decode(src.tree)
	p := problems{written: written, undecoded: append(undecoded, src.undecoded...), incomplete: map[string]bool{}}
	for _, f := range failures {
		if slices.ContainsFunc(src.undecoded, func(u string) bool { return within(f.problem.Path, u) }) {
			continue // a value whose ${…} failed: that failure is reported
		}
		if f.unknownKey != "" {
			f.problem.Line = src.lineOf(keyPath(f.problem.Path, f.unknownKey))
			p.incomplete[f.problem.Path] = true
		}
		found = append(found, f.problem)
	}
	cfg.validate(&p)
	found = append(found, p.list...)
	if opts.Check != nil {
		reported := map[string]bool{}
		for _, e := range found {
			reported[e.Path] = true
		}
		for _, e := range opts.Check(cfg) {
			if !reported[e.Path] && !p.isUndecoded(e.Path) {
				found = append(found, e)
			}
		}
	}
	for _, e := range found {
		if e.Line == 0 {
			e.Line = src.lineOf(e.Path)
		}
	}
	if len(found) > 0 {
		sortProblems(found)
		return nil, found
	}
	return cfg, nil
}

// dropExtensions removes the top-level keys that start with "x-": as in a
// compose file, they hold what the rest refers to (YAML anchors) and are
// not pilot's.
func dropExtensions(tree map[string]any) {
	for key := range tree {
		if strings.HasPrefix(key, "x-") {
			delete(tree, key)
		}
	}
}

// notePaths records the path of every key and list item in the tree, down
// to maxTrackedDepth.
func notePaths(path []any, v any, into map[string]bool) {
	if len(path) >= maxTrackedDepth {
		return
	}
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			step := append(path, k)
			into[spellPath(step)] = true
			notePaths(step, child, into)
		}
	case []any:
		for i, child := range v {
			step := append(path, i)
			into[spellPath(step)] = true
			notePaths(step, child, into)
		}
	}
}

// LogFormat reads log.format from the config file at path, whatever else is
// wrong with the file, so that its problems can be reported in the format
// its pilot would log in. It returns "" when the file does not say (or
// cannot be read or parsed).
func LogFormat(path string, opts Options) string {
	format, err := normalizeFormat(strings.TrimPrefix(filepath.Ext(path), "."))
	if err != nil {
		return ""
	}
	data, err := readFile(path)
	if err != nil {
		return ""
	}
	lookup := opts.Env
	if lookup == nil {
		lookup = os.LookupEnv
	}
	src, _ := parse(data, format, lookup)
	if src == nil {
		return ""
	}
	log, _ := src.tree["log"].(map[string]any)
	value, _ := log["format"].(string)
	return value
}
