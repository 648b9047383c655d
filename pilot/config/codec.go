package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
	"go.yaml.in/yaml/v3"
)

// formats lists the accepted config formats, for messages.
const formats = "yaml, yml, json or toml"

// normalizeFormat accepts a format name in any case.
func normalizeFormat(format string) (string, error) {
	switch f := strings.ToLower(format); f {
	case "yaml", "yml":
		return "yaml", nil
	case "json", "toml":
		return f, nil
	default:
		return "", fmt.Errorf("unknown config format %q (use %s)", format, formats)
	}
}

// maxTrackedDepth bounds the depth at which the lines and paths of a
// document are noted. pilot's config nests a few levels; a value far deeper
// is refused, at a shallow path, for its type, and spelling the path of
// every node of a document nested thousands deep would cost quadratic time
// and memory.
const maxTrackedDepth = 32

// source is a document parsed into the generic tree that is decoded, with
// the line each key and list item was written on.
type source struct {
	tree map[string]any
	// lines maps a path (jobs[0].name) to its line; a path the file does
	// not hold takes the line of its nearest ancestor (lineOf).
	lines map[string]int
	// undecoded are the paths whose ${…} could not be expanded; their
	// values are left out of the decoding and validation.
	undecoded []string
}

// lineOf is the line of path, or of its nearest ancestor in the file; 0
// when none is known.
func (s *source) lineOf(path string) int {
	for {
		if line, ok := s.lines[path]; ok || path == "" {
			return line
		}
		path = parentPath(path)
	}
}

// parse reads a document in a normalized format into a source, expanding
// ${VAR}. Problems come with their lines; a nil source means the document
// could not be read at all (a syntax error), so nothing more can be said.
// Each parser is third-party code fed with user input: a panic in one is
// reported as a problem, never passed on, since pilot may be PID 1.
func parse(data []byte, format string, lookup LookupFunc) (src *source, found []*FieldError) {
	defer func() {
		if r := recover(); r != nil {
			src, found = nil, []*FieldError{{Message: fmt.Sprintf("the %s parser failed on this input: %v", format, r)}}
		}
	}()
	switch format {
	case "yaml":
		src, found = parseYAML(data, lookup)
	case "json":
		src, found = parseJSON(data, lookup)
	default:
		src, found = parseTOML(data, lookup)
	}
	if src != nil {
		var p problems
		src.tree = normalizeMap(nil, src.tree, &p)
		found = append(found, p.list...)
	}
	return src, found
}

// parseYAML reads YAML through yaml.v3's node tree, which knows the line
// of every key and value. ${VAR} is expanded in scalar values only (never
// in keys or comments); a plain scalar is then typed again by the new
// value, so that an unquoted ${PORT:-3000} is the integer 3000, as if 3000
// had been written, while a quoted one stays a string.
//
// A ${…} holds braces, which YAML reads as a flow mapping inside [ ] or
// { }: each is first swapped for a placeholder that YAML reads as plain
// text anywhere, and swapped back (expanded in a value, as written in a
// key) once the document is parsed.
func parseYAML(data []byte, lookup LookupFunc) (*source, []*FieldError) {
	protected, vars := protectVariables(data)
	dec := yaml.NewDecoder(bytes.NewReader(protected))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return &source{tree: map[string]any{}}, nil
	} else if err != nil {
		return nil, []*FieldError{yamlSyntaxError(err, 1)}
	}
	var found []*FieldError
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			found = append(found, yamlSyntaxError(err, 1))
			break
		}
		if !emptyDocument(&next) {
			found = append(found, &FieldError{Line: next.Line,
				Message: "a second YAML document starts here (after ---); a config file holds one document"})
			break
		}
	}
	src := &source{lines: map[string]int{}}
	w := yamlWalk{src: src, lookup: lookup, vars: vars}
	w.walk(&doc, nil)
	found = append(found, w.found...)
	if emptyDocument(&doc) {
		src.tree = map[string]any{}
		return src, found
	}
	if top := doc.Content[0]; top.Kind != yaml.MappingNode {
		return nil, append(found, &FieldError{Line: top.Line, Message: "the top level must be a mapping"})
	}
	if err := doc.Decode(&src.tree); err != nil {
		var typeErr *yaml.TypeError
		if !errors.As(err, &typeErr) {
			return nil, append(found, yamlSyntaxError(err, 0))
		}
		// Duplicate keys; the rest of the tree is decoded.
		for _, msg := range typeErr.Errors {
			found = append(found, yamlSyntaxError(errors.New("yaml: "+msg), 0))
		}
	}
	return src, found
}

// A placeholder for the ${…} number N is placeholderStart, N in decimal,
// placeholderEnd: private-use characters, which YAML takes as plain text
// in any context and no config has reason to hold.
const (
	placeholderStart = "\uE000"
	placeholderEnd   = "\uE001"
)

// variable is a ${…} as written, and its line.
type variable struct {
	text string
	line int
}

// protectVariables swaps each ${…} that closes on its line for a
// placeholder; $$ is kept as it is (it is a $ once expanded), as is a ${
// that does not close, for expand to report where it stands in a value.
func protectVariables(data []byte) ([]byte, []variable) {
	if !bytes.Contains(data, []byte("${")) {
		return data, nil
	}
	var out bytes.Buffer
	out.Grow(len(data))
	var vars []variable
	line := 1
	for i := 0; i < len(data); {
		switch {
		case data[i] == '\n':
			line++
		case data[i] == '$' && i+1 < len(data) && data[i+1] == '$':
			out.WriteString("$$")
			i += 2
			continue
		case data[i] == '$' && i+1 < len(data) && data[i+1] == '{':
			if end := bytes.IndexAny(data[i+2:], "}\n"); end >= 0 && data[i+2+end] == '}' {
				text := data[i : i+2+end+1]
				fmt.Fprintf(&out, "%s%d%s", placeholderStart, len(vars), placeholderEnd)
				vars = append(vars, variable{string(text), line})
				i += len(text)
				continue
			}
		}
		out.WriteByte(data[i])
		i++
	}
	return out.Bytes(), vars
}

// emptyDocument reports whether a document holds nothing: a lone ---, a
// null, or an empty file.
func emptyDocument(doc *yaml.Node) bool {
	if len(doc.Content) != 1 {
		return len(doc.Content) == 0
	}
	n := doc.Content[0]
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// yamlWalk visits a YAML node tree once, putting back the ${…} that
// protectVariables took out (expanded in values) and noting the line of
// each key and list item. It never follows an alias: the anchored node is
// visited where it is written, so it is expanded once, and a document full
// of aliases costs linear time.
type yamlWalk struct {
	src    *source
	lookup LookupFunc
	vars   []variable
	found  []*FieldError
}

func (w *yamlWalk) walk(n *yaml.Node, path []any) {
	if len(path) > maxTrackedDepth {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			w.walk(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, value := n.Content[i], n.Content[i+1]
			if key.Kind == yaml.ScalarNode && key.Tag == "!!merge" {
				// The merged keys belong to this mapping; those it
				// takes from an alias are visited at their anchor.
				w.walk(value, path)
				continue
			}
			w.restoreKey(key)
			step := append(path, key.Value)
			w.src.lines[spellPath(step)] = key.Line
			w.walk(value, step)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			step := append(path, i)
			w.src.lines[spellPath(step)] = item.Line
			w.walk(item, step)
		}
	case yaml.ScalarNode:
		w.expand(n, path)
	}
}

// restoreKey puts back the ${…} of a key as written: keys are not
// expanded.
func (w *yamlWalk) restoreKey(n *yaml.Node) {
	if n.Kind != yaml.ScalarNode || !strings.Contains(n.Value, placeholderStart) {
		return
	}
	n.Value = w.replacePlaceholders(n.Value, func(v variable) string { return v.text }, func(s string) string { return s })
}

// expand expands the ${…} and $$ of a scalar value.
func (w *yamlWalk) expand(n *yaml.Node, path []any) {
	if !strings.Contains(n.Value, "$") && !strings.Contains(n.Value, placeholderStart) {
		return
	}
	failed := false
	fail := func(line int, err error) {
		w.found = append(w.found, &FieldError{Line: line, Path: spellPath(path), Message: err.Error()})
		failed = true
	}
	linesBefore := 0 // in the value, for a ${ that does not close
	value := w.replacePlaceholders(n.Value,
		func(v variable) string {
			value, err := expandVariable(v.text[2:len(v.text)-1], w.lookup)
			if err != nil {
				fail(v.line, err)
			}
			return value
		},
		func(text string) string {
			expanded, errs := expand([]byte(text), w.lookup, nil)
			for _, e := range errs {
				line := n.Line + linesBefore + e.linesBefore
				if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
					line++ // a block scalar's text starts on the line after | or >
				}
				fail(line, e.err)
			}
			linesBefore += strings.Count(text, "\n")
			return string(expanded)
		})
	if failed {
		w.src.undecoded = append(w.src.undecoded, spellPath(path))
	}
	if value == n.Value {
		return
	}
	n.Value = value
	if n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		n.Tag = "" // a plain scalar: typed by its new value when decoded
	}
}

// replacePlaceholders rebuilds s with each placeholder replaced by
// variable(its ${…}) and the text between them by text(it).
func (w *yamlWalk) replacePlaceholders(s string, variable func(variable) string, text func(string) string) string {
	var b strings.Builder
	for {
		start := strings.Index(s, placeholderStart)
		if start < 0 {
			b.WriteString(text(s))
			return b.String()
		}
		b.WriteString(text(s[:start]))
		rest := s[start+len(placeholderStart):]
		end := strings.Index(rest, placeholderEnd)
		n, err := strconv.Atoi(rest[:max(end, 0)])
		if end < 0 || err != nil || n < 0 || n >= len(w.vars) {
			b.WriteString(placeholderStart) // not one of ours
			s = rest
			continue
		}
		b.WriteString(variable(w.vars[n]))
		s = rest[end+len(placeholderEnd):]
	}
}

// yamlParserProblems are the messages of yaml.v3's parser (as opposed to
// its scanner). yaml.v3 reports a parser error's line counting from 0, and
// a scanner error's counting from 1 (see its parser.fail), so a parser
// error would read one line early.
var yamlParserProblems = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"found undefined tag handle",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
}

// yamlSyntaxError turns yaml.v3's "yaml: line N: MESSAGE" into a problem
// on line N, the line counted from 1 whatever yaml.v3's own count. An
// error without a line is on line noLine: 1 for a syntax error (yaml.v3
// leaves out line 0), 0 (unknown) for one found while decoding.
func yamlSyntaxError(err error, noLine int) *FieldError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := noLine
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, text, ok := strings.Cut(rest, ": "); ok {
			if v, err := strconv.Atoi(n); err == nil {
				line, msg = v, text
				if slices.Contains(yamlParserProblems, msg) {
					line++
				}
			}
		}
	}
	return &FieldError{Line: line, Message: "yaml: " + msg}
}

// parseJSON reads JSON. JSON has no comments, so ${VAR} is expanded in the
// text before parsing; a value that may hold a quote belongs in a variable
// the shell escapes, or in YAML.
func parseJSON(data []byte, lookup LookupFunc) (*source, []*FieldError) {
	expanded, errs := expand(data, lookup, nil)
	if len(errs) > 0 {
		return nil, expansionProblems(errs)
	}
	var tree map[string]any
	if err := json.Unmarshal(expanded, &tree); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			line, col := position(expanded, syntax.Offset)
			return nil, []*FieldError{{Line: line, Message: fmt.Sprintf("json: column %d: %s", col, syntax)}}
		case errors.As(err, &typ) && typ.Field == "":
			return nil, []*FieldError{{Line: 1, Message: "json: the top level must be an object, not " + typ.Value}}
		default:
			return nil, []*FieldError{{Message: "json: " + err.Error()}}
		}
	}
	if tree == nil {
		tree = map[string]any{}
	}
	src := &source{tree: tree, lines: map[string]int{}}
	walk := jsonWalk{dec: json.NewDecoder(bytes.NewReader(expanded)), data: expanded, src: src}
	walk.value(nil)
	return src, walk.found
}

// position turns the offset that encoding/json reports, the number of bytes
// read up to and including the offending one, into a line and column.
func position(data []byte, offset int64) (line, column int) {
	at := int(min(max(offset-1, 0), int64(len(data))))
	before := data[:at]
	return bytes.Count(before, []byte("\n")) + 1, at - bytes.LastIndexByte(before, '\n')
}

// jsonWalk reads a valid JSON document token by token, to note the line of
// each key and list item and to report a key that an object holds twice
// (encoding/json keeps the last without a word; YAML and TOML refuse it,
// and so does pilot). The path is kept as a stack of keys and indexes and
// spelled out only when needed, so that deep or long documents cost linear
// time.
type jsonWalk struct {
	dec   *json.Decoder
	data  []byte
	src   *source
	found []*FieldError
	// offset and line are where the line count stands: offsets only grow.
	offset, line int
}

// lineAt is the line of the byte at offset, which never goes back.
func (w *jsonWalk) lineAt(offset int) int {
	offset = min(offset, len(w.data))
	w.line += bytes.Count(w.data[w.offset:offset], []byte("\n"))
	w.offset = offset
	return w.line + 1
}

// nextToken is the offset of the first token at or after offset.
func (w *jsonWalk) nextToken(offset int) int {
	for offset < len(w.data) && strings.IndexByte(" \t\r\n,:", w.data[offset]) >= 0 {
		offset++
	}
	return offset
}

func (w *jsonWalk) value(path []any) {
	tok, err := w.dec.Token()
	if err != nil {
		return // the document was parsed already: this cannot happen
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for w.dec.More() {
			keyTok, err := w.dec.Token()
			if err != nil {
				return
			}
			key, _ := keyTok.(string) // the decoder yields only string keys
			step := append(path, key)
			line := w.lineAt(int(w.dec.InputOffset()) - 1) // the key's closing quote
			if seen[key] {
				w.found = append(w.found, &FieldError{Line: line, Path: spellPath(path), Message: fmt.Sprintf("duplicate key %q", key)})
			} else if len(step) <= maxTrackedDepth {
				w.src.lines[spellPath(step)] = line
			}
			seen[key] = true
			w.value(step)
		}
		w.dec.Token() // the closing }
	case json.Delim('['):
		for i := 0; w.dec.More(); i++ {
			step := append(path, i)
			if len(step) <= maxTrackedDepth {
				w.src.lines[spellPath(step)] = w.lineAt(w.nextToken(int(w.dec.InputOffset())))
			}
			w.value(step)
		}
		w.dec.Token() // the closing ]
	}
}

// parseTOML reads TOML. ${VAR} is expanded in the text before parsing, as
// in JSON, but not in comments; an unquoted ${PORT:-3000} is therefore
// the integer 3000, and a value that may hold a quote belongs in a
// variable the shell escapes, or in YAML.
func parseTOML(data []byte, lookup LookupFunc) (*source, []*FieldError) {
	expanded, errs := expand(data, lookup, tomlComments(data))
	if len(errs) > 0 {
		return nil, expansionProblems(errs)
	}
	tree := map[string]any{}
	if err := toml.Unmarshal(expanded, &tree); err != nil {
		var decodeErr *toml.DecodeError
		if errors.As(err, &decodeErr) {
			row, col := decodeErr.Position()
			return nil, []*FieldError{{Line: row, Message: fmt.Sprintf("toml: column %d: %s", col, strings.TrimPrefix(decodeErr.Error(), "toml: "))}}
		}
		return nil, []*FieldError{{Message: "toml: " + strings.TrimPrefix(err.Error(), "toml: ")}}
	}
	return &source{tree: tree, lines: tomlLines(expanded)}, nil
}

func expansionProblems(errs []expansionError) []*FieldError {
	found := make([]*FieldError, len(errs))
	for i, e := range errs {
		found[i] = &FieldError{Line: e.linesBefore + 1, Message: e.err.Error()}
	}
	return found
}

// tomlLines notes the line of each key, table and array-of-tables entry of
// a valid TOML document, with go-toml's own parser.
func tomlLines(data []byte) map[string]int {
	newlines := []int{}
	for i, c := range data {
		if c == '\n' {
			newlines = append(newlines, i)
		}
	}
	w := tomlWalk{lines: map[string]int{}, newlines: newlines, arrays: map[string]int{}}
	var p unstable.Parser
	p.Reset(data)
	var table []any
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = w.header(e)
		case unstable.KeyValue:
			w.keyValue(e, table)
		}
	}
	return w.lines
}

type tomlWalk struct {
	lines    map[string]int
	newlines []int
	// arrays counts the entries of each array of tables so far, by path.
	arrays map[string]int
}

func (w *tomlWalk) lineAt(offset uint32) int {
	return sort.SearchInts(w.newlines, int(offset)) + 1
}

// header resolves a [table] or [[array.of.tables]] header to its path:
// a key that names an array of tables means its latest entry.
func (w *tomlWalk) header(e *unstable.Node) []any {
	var path []any
	var line int
	keys := e.Key()
	for keys.Next() {
		k := keys.Node()
		if line == 0 {
			line = w.lineAt(k.Raw.Offset)
		}
		path = append(path, string(k.Data))
		if n := w.arrays[spellPath(path)]; n > 0 && !(keys.IsLast() && e.Kind == unstable.ArrayTable) {
			path = append(path, n-1)
		}
	}
	if e.Kind == unstable.ArrayTable {
		at := spellPath(path)
		w.arrays[at]++
		path = append(path, w.arrays[at]-1)
	}
	w.lines[spellPath(path)] = line
	return path
}

func (w *tomlWalk) keyValue(e *unstable.Node, table []any) {
	path := slices.Clone(table)
	keys := e.Key()
	for keys.Next() {
		k := keys.Node()
		path = append(path, string(k.Data))
		w.lines[spellPath(path)] = w.lineAt(k.Raw.Offset)
	}
	w.value(e.Value(), path)
}

func (w *tomlWalk) value(v *unstable.Node, path []any) {
	if len(path) > maxTrackedDepth {
		return
	}
	switch v.Kind {
	case unstable.InlineTable:
		children := v.Children()
		for children.Next() {
			w.keyValue(children.Node(), path)
		}
	case unstable.Array:
		children := v.Children()
		for i := 0; children.Next(); i++ {
			item := children.Node()
			step := append(path, i)
			if item.Raw.Length > 0 {
				w.lines[spellPath(step)] = w.lineAt(item.Raw.Offset)
			}
			w.value(item, step)
		}
	}
}

// normalizeMap copies a decoded map, turning the map[any]any that YAML
// yields for nested mappings into map[string]any, which is what mapstructure
// needs (it panics on a non-string key where a struct is expected). Scalar
// keys (1, true) are spelled as strings, as YAML does at the top level; a list
// or map used as a key is a problem. The path is a stack, as in jsonWalk.
func normalizeMap(path []any, m map[string]any, p *problems) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = normalizeValue(append(path, k), v, p)
	}
	return out
}

func normalizeValue(path []any, v any, p *problems) any {
	switch v := v.(type) {
	case map[string]any:
		return normalizeMap(path, v, p)
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, val := range v {
			switch k.(type) {
			case string, bool, int, int64, uint64, float64:
				key := fmt.Sprint(k)
				if _, dup := m[key]; dup {
					p.add(spellPath(path), "duplicate key %q", key)
				}
				m[key] = val
			default:
				p.add(spellPath(path), "a key must be a string, not %s", describe(k))
			}
		}
		return normalizeMap(path, m, p)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalizeValue(append(path, i), e, p)
		}
		return out
	default:
		return v
	}
}
