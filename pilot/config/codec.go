package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// formats lists the accepted config formats, for messages.
const formats = "yaml, yml, json or toml"

// normalizeFormat accepts a format name in any case.
func normalizeFormat(format string) (string, error) {
	switch f := strings.ToLower(format); f {
	case "yaml", "yml", "json", "toml":
		return f, nil
	default:
		return "", fmt.Errorf("unknown config format %q (use %s)", format, formats)
	}
}

// parseTree decodes a document into a generic tree whose keys are exactly as
// written. It uses viper's codecs, but not viper.ReadConfig, which lowercases
// every key (see doc.go).
func parseTree(data []byte, format string) (map[string]any, error) {
	decoder, err := viper.NewCodecRegistry().Decoder(format)
	if err != nil {
		return nil, err
	}
	if format == "json" {
		// encoding/json keeps the last of two equal keys without a word;
		// YAML and TOML reject them, and so does pilot for JSON.
		if err := checkJSONKeys(data); err != nil {
			return nil, err
		}
	}
	tree := map[string]any{}
	if err := decodeSafely(decoder, data, tree); err != nil {
		return nil, syntaxError(format, data, err)
	}
	var p problems
	tree = normalizeMap(nil, tree, &p)
	return tree, p.err()
}

// decodeSafely runs a codec, turning a panic into an error: the parsers are
// third-party code fed with user input, and pilot, which may be PID 1, must
// report a bad config rather than crash on one.
func decodeSafely(decoder viper.Decoder, data []byte, tree map[string]any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the parser failed on this input: %v", r)
		}
	}()
	return decoder.Decode(data, tree)
}

// syntaxError rewords a parser's error where it would not help a user: a
// JSON or TOML error gets the line it lacks, and a complaint about
// map[string]interface {} becomes one about the document's top level.
func syntaxError(format string, data []byte, err error) error {
	var jsonSyntax *json.SyntaxError
	var jsonType *json.UnmarshalTypeError
	var tomlErr *toml.DecodeError
	var yamlType *yaml.TypeError
	switch {
	case errors.As(err, &jsonSyntax):
		return fmt.Errorf("json: %s: %s", position(data, jsonSyntax.Offset), jsonSyntax)
	case errors.As(err, &jsonType) && jsonType.Field == "":
		return fmt.Errorf("json: the top level must be an object, not %s", jsonType.Value)
	case errors.As(err, &tomlErr):
		row, col := tomlErr.Position()
		return fmt.Errorf("toml: line %d, column %d: %s", row, col, strings.TrimPrefix(tomlErr.Error(), "toml: "))
	case errors.As(err, &yamlType):
		// One error per line, each "yaml: line N: …", as yaml's syntax
		// errors already read.
		errs := make([]error, len(yamlType.Errors))
		for i, msg := range yamlType.Errors {
			if line, rest, ok := strings.Cut(msg, ": cannot unmarshal "); ok && strings.HasSuffix(rest, " into map[string]interface {}") {
				msg = line + ": the top level must be a mapping"
			}
			errs[i] = errors.New("yaml: " + msg)
		}
		return errors.Join(errs...)
	case strings.HasPrefix(err.Error(), format+":"):
		return err
	default:
		return fmt.Errorf("%s: %w", format, err)
	}
}

// position turns the offset that encoding/json reports, the number of bytes
// read up to and including the offending one, into "line L, column C".
func position(data []byte, offset int64) string {
	at := int(min(max(offset-1, 0), int64(len(data))))
	before := data[:at]
	line := bytes.Count(before, []byte("\n")) + 1
	column := at - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, column)
}

// checkJSONKeys reports the first object that holds a key twice. Syntax
// errors are left to the JSON codec, which reports them with their offset.
func checkJSONKeys(data []byte) error {
	var dup *FieldError
	if errors.As(checkJSONValue(json.NewDecoder(bytes.NewReader(data)), nil), &dup) {
		return dup
	}
	return nil
}

// checkJSONValue walks one value. The path to it is kept as a stack of keys
// (string) and indexes (int) and spelled out only for an error, so that deep
// or long documents cost linear time.
func checkJSONValue(dec *json.Decoder, path []any) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := keyTok.(string) // the decoder yields only string keys
			if seen[key] {
				return &FieldError{Path: spellPath(path), Message: fmt.Sprintf("duplicate key %q", key)}
			}
			seen[key] = true
			if err := checkJSONValue(dec, append(path, key)); err != nil {
				return err
			}
		}
		_, err = dec.Token() // the closing }
		return err
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if err := checkJSONValue(dec, append(path, i)); err != nil {
				return err
			}
		}
		_, err = dec.Token() // the closing ]
		return err
	default:
		return nil
	}
}

// normalizeMap copies a decoded map, turning the map[any]any that YAML
// yields for nested mappings into map[string]any, which is what mapstructure
// needs (it panics on a non-string key where a struct is expected). Scalar
// keys (1, true) are spelled as strings, as YAML does at the top level; a list
// or map used as a key is a problem. The path is a stack, as in
// checkJSONValue.
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
