package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/nodepilot/pilot/pilot/config"
)

// MaxBody is the largest request body the server reads. The biggest real
// one, a putenv of many variables, is a few KiB; a client sending more
// is broken, and pilot shares the container's memory with the app.
const MaxBody = 1 << 20

// requestError is a request the server refuses before the API sees it: its
// status (400, 413) and a message that names the field or value at fault.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// readBody reads r's body, at most MaxBody bytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *requestError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &requestError{status: http.StatusRequestEntityTooLarge,
				msg: fmt.Sprintf("request body: larger than %d bytes", mbe.Limit)}
		}
		return nil, badRequest("request body: %v", err)
	}
	return body, nil
}

// decodeJSON reads body as exactly one JSON value into v: unknown fields,
// a value of the wrong type and anything after the value are refused. want
// shows the expected shape in messages. An empty body is refused unless
// optional, and then leaves v alone.
func decodeJSON(body []byte, v any, want string, optional bool) *requestError {
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return badRequest("request body: empty; want %s", want)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body: %s; want %s", describeJSONError(err), want)
	}
	// One value only: `{"enabled":true}{"enabled":false}` is a client bug,
	// not a request for the first half.
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("request body: unexpected data after the JSON value at byte %d; want %s", dec.InputOffset(), want)
	}
	return nil
}

// decodeObject reads a JSON object of values of type V, such as the
// variables of putenv. Each value is decoded on its own, so that a wrong
// one is reported under its key (encoding/json names no map key), and
// null, which would decode to the zero value, is refused. what names V for
// messages.
func decodeObject[V any](body []byte, shape, what string) (map[string]V, *requestError) {
	var raw map[string]json.RawMessage
	if err := decodeJSON(body, &raw, shape, false); err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, badRequest("request body: null; want %s", shape)
	}
	out := make(map[string]V, len(raw))
	for _, key := range sortedKeys(raw) {
		if string(raw[key]) == "null" {
			return nil, badRequest("field %q: null where %s was expected", key, what)
		}
		var v V
		if err := json.Unmarshal(raw[key], &v); err != nil {
			if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
				te.Field = key
			}
			return nil, badRequest("%s; want %s", describeJSONError(err), shape)
		}
		out[key] = v
	}
	return out, nil
}

// describeJSONError turns encoding/json's error into a phrase that names
// the field or the place at fault.
func describeJSONError(err error) string {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		where := ""
		if te.Field != "" {
			where = fmt.Sprintf("field %q: ", te.Field)
		}
		if number, ok := strings.CutPrefix(te.Value, "number "); ok { // 1e999
			return where + number + " is out of range"
		}
		return fmt.Sprintf("%sa JSON %s where %s was expected", where, te.Value, jsonKind(te.Type.Kind()))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "malformed JSON: it ends too soon"
	}
	// The rest, such as `unknown field "x"`, encoding/json words well.
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind names a Go kind as JSON calls it.
func jsonKind(kind reflect.Kind) string {
	switch kind {
	case reflect.Bool:
		return "a boolean"
	case reflect.String:
		return "a string"
	case reflect.Float64, reflect.Float32, reflect.Int, reflect.Int64:
		return "a number"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice:
		return "an array"
	}
	return kind.String()
}

// The request bodies. Each is decoded strictly (decodeJSON), then checked
// here, so that the API only ever sees a well-formed request.

type maintenanceRequest struct {
	// Enabled is a pointer so that `{}` is refused rather than read as off.
	Enabled *bool `json:"enabled"`
}

const maintenanceShape = `{"enabled": true} or {"enabled": false}`

func decodeMaintenance(body []byte) (bool, *requestError) {
	var req maintenanceRequest
	if err := decodeJSON(body, &req, maintenanceShape, false); err != nil {
		return false, err
	}
	if req.Enabled == nil {
		return false, badRequest(`request body: field "enabled" is missing; want %s`, maintenanceShape)
	}
	return *req.Enabled, nil
}

const envShape = `{"NAME": "value", …}`

// decodeEnv reads variables to set. A name that is empty or holds '=' or
// NUL, or a value that holds NUL, could never reach a process's
// environment intact: execve would cut it or read it as another variable.
func decodeEnv(body []byte) (map[string]string, *requestError) {
	vars, err := decodeObject[string](body, envShape, "a string")
	if err != nil {
		return nil, err
	}
	if len(vars) == 0 {
		return nil, badRequest("request body: no variables; want %s", envShape)
	}
	for _, name := range sortedKeys(vars) {
		switch {
		case name == "":
			return nil, badRequest("variable name: empty")
		case strings.ContainsRune(name, '='):
			return nil, badRequest("variable name %q: contains '=', which ends a name", name)
		case strings.ContainsRune(name, 0):
			return nil, badRequest("variable name %q: contains a NUL byte", name)
		case strings.ContainsRune(vars[name], 0):
			return nil, badRequest("variable %s: the value contains a NUL byte", name)
		}
	}
	return vars, nil
}

const metricsShape = `{"name": 1.5, …}`

func decodeMetrics(body []byte) (map[string]float64, *requestError) {
	values, err := decodeObject[float64](body, metricsShape, "a number")
	if err != nil {
		return nil, err
	}
	if len(values) == 0 {
		return nil, badRequest("request body: no metrics; want %s", metricsShape)
	}
	for _, name := range sortedKeys(values) {
		if strings.TrimSpace(name) == "" {
			return nil, badRequest("metric name: empty")
		}
	}
	return values, nil
}

type signalRequest struct {
	// Signal is a name ("SIGUSR2", "USR2", any case), as a JSON string, or
	// a number, as a JSON number or string.
	Signal json.RawMessage `json:"signal"`
}

const signalShape = `{"signal": "SIGUSR2"} (a name, with or without SIG, or a number)`

// maxSignal is the highest signal number on Linux (SIGRTMAX, _NSIG-1).
const maxSignal = 64

func decodeSignal(body []byte) (syscall.Signal, *requestError) {
	var req signalRequest
	if err := decodeJSON(body, &req, signalShape, false); err != nil {
		return 0, err
	}
	raw := bytes.TrimSpace(req.Signal)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, badRequest(`request body: field "signal" is missing; want %s`, signalShape)
	}
	var text string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, badRequest(`field "signal": %s`, describeJSONError(err))
		}
	} else if raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9' {
		text = string(raw)
	} else {
		return 0, badRequest(`field "signal": %s is neither a signal name nor a number; want %s`, raw, signalShape)
	}
	sig, err := ParseSignal(text)
	if err != nil {
		return 0, badRequest(`field "signal": %v`, err)
	}
	return sig, nil
}

// ParseSignal reads a signal as the control socket takes it: a name as the
// config takes it (config.Signal: "SIGUSR2", "USR2", any case), or a
// number from 1 to 64. The config itself takes names only; a number is
// what kill(1) users type, and SIGRTMIN+n has no other spelling.
func ParseSignal(text string) (syscall.Signal, error) {
	if text != "" && strings.Trim(text, "+-0123456789") == "" {
		n, err := strconv.Atoi(text)
		if err != nil || n < 1 || n > maxSignal {
			return 0, fmt.Errorf("signal %q: a number must be from 1 to %d", text, maxSignal)
		}
		return syscall.Signal(n), nil
	}
	var sig config.Signal
	if err := sig.UnmarshalText([]byte(text)); err != nil {
		return 0, fmt.Errorf("%w: want a name such as SIGUSR2 or USR2, or a number from 1 to %d", err, maxSignal)
	}
	return syscall.Signal(sig), nil
}

// decodeEmpty reads the body of a request that takes none: nothing, or
// `{}`. A field is refused, so that a client sending an option this
// version does not know hears so instead of having it ignored.
func decodeEmpty(body []byte) *requestError {
	return decodeJSON(body, &struct{}{}, "no body, or {}", true)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// finite reports whether every value can be written as JSON (the client's
// check: encoding/json refuses NaN and ±Inf).
func finite(values map[string]float64) error {
	for _, name := range sortedKeys(values) {
		if v := values[name]; math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("metric %s: %v is not a value JSON can carry", name, v)
		}
	}
	return nil
}

// signalName spells a signal as ParseSignal reads it back: its name, or
// its number when it has none.
func signalName(sig syscall.Signal) string { return config.Signal(sig).String() }
