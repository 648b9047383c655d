package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"text/template"
)

// TemplateOptions configure TemplateWith.
type TemplateOptions struct {
	// Name appears in errors ("template: NAME:LINE: …"); use the source
	// path. Empty means "template".
	Name string
	// LookupEnv backs the env helper; nil means os.LookupEnv. Tests pass a
	// map-backed function to keep the render pure.
	LookupEnv func(string) (string, bool)
}

// Template renders the user template src (Go text/template) with s as its
// data (.Service, .Instances; each instance has .ID, .Node, .Address, .Port,
// .Tags, .Meta, .Status and .HostPort). Helpers:
//
//	join SEP LIST     LIST's elements joined by SEP:  {{ .Tags | join "," }}
//	env NAME          the environment variable, "" when unset
//	default DEF V     V, or DEF when V is empty:      {{ .Meta.weight | default "1" }}
//	toJSON V          V as compact JSON
//
// A missing map key yields its zero value. Parse and execution errors name
// the template and line ("template: NAME:3:14: …"); on error no output is
// returned, never a partial one.
func Template(src []byte, s Snapshot) ([]byte, error) {
	return TemplateWith(src, s, TemplateOptions{})
}

// TemplateWith is Template with options.
func TemplateWith(src []byte, s Snapshot, opts TemplateOptions) ([]byte, error) {
	name := opts.Name
	if name == "" {
		name = "template"
	}
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	t, err := parseTemplate(name, src, lookup)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, s); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ParseTemplate parses the user template src as Template would, with its
// helpers, without rendering it: config validation uses it to report a
// template's syntax errors before pilot runs. name is as in
// TemplateOptions.
func ParseTemplate(name string, src []byte) error {
	_, err := parseTemplate(name, src, os.LookupEnv)
	return err
}

func parseTemplate(name string, src []byte, lookup func(string) (string, bool)) (*template.Template, error) {
	return template.New(name).Option("missingkey=zero").Funcs(template.FuncMap{
		"join":    join,
		"env":     func(k string) string { v, _ := lookup(k); return v },
		"default": dflt,
		"toJSON":  toJSON,
	}).Parse(string(src))
}

func join(sep string, list any) (string, error) {
	switch l := list.(type) {
	case nil:
		return "", nil
	case []string:
		return strings.Join(l, sep), nil
	}
	v := reflect.ValueOf(list)
	if k := v.Kind(); k != reflect.Slice && k != reflect.Array {
		return "", fmt.Errorf("join: want a list, got %T", list)
	}
	parts := make([]string, v.Len())
	for i := range parts {
		parts[i] = fmt.Sprint(v.Index(i).Interface())
	}
	return strings.Join(parts, sep), nil
}

func dflt(def, v any) any {
	if v == nil {
		return def
	}
	if rv := reflect.ValueOf(v); rv.IsZero() || (rv.Kind() == reflect.Slice || rv.Kind() == reflect.Map) && rv.Len() == 0 {
		return def
	}
	return v
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("toJSON: %w", err)
	}
	return string(b), nil
}
