package control

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// fuzzRoutes are the requests whose bodies FuzzDecodeRequest varies: every
// endpoint, so that each decoder, and the empty-body check of the others,
// sees the fuzzer's bytes.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/v1/maintenance"},
	{"POST", "/v1/env"},
	{"POST", "/v1/metrics"},
	{"POST", "/v1/jobs/web/signal"},
	{"POST", "/v1/reload"},
	{"POST", "/v1/jobs/web/restart"},
	{"GET", "/v1/status"},
	{"GET", "/v1/health"},
}

// FuzzDecodeRequest: whatever the body, the server never panics and never
// fails (5xx) on it; it answers 200, or a 4xx with a JSON error message.
func FuzzDecodeRequest(f *testing.F) {
	for i := range fuzzRoutes {
		for _, seed := range []string{
			``, `{}`, `null`, `[]`, `{"enabled":true}`, `{"enabled":"x"}`, `{"enabled":true}{}`,
			`{"A":"1","B=":"2"}`, `{"":""}`, "{\"A\":\"\\u0000\"}", `{"queue_depth":1e999}`, `{"hits":-1}`,
			`{"signal":"USR2"}`, `{"signal":12}`, `{"signal":-1}`, `{"signal":1.5}`, `{"signal":{}}`, `{"signal":"\ud800"}`,
			`{"a":`, "\xff\xfe", `{"enabled":true,"enabled":false}`, ` {"x":1} `,
		} {
			f.Add(uint8(i), []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		h := NewServer(newFake(), nil, nil).srv.Handler
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(r.method, r.path, bytes.NewReader(body)))
		code := rec.Code
		if code != 200 && (code < 400 || code >= 500) {
			t.Fatalf("%s %s %q: status %d, want 200 or a 4xx:\n%s", r.method, r.path, body, code, rec.Body)
		}
		var answer map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("%s %s %q: the answer is not a JSON object: %v\n%s", r.method, r.path, body, err, rec.Body)
		}
		if msg, _ := answer["error"].(string); code != 200 && msg == "" {
			t.Fatalf("%s %s %q: %d without an error message:\n%s", r.method, r.path, body, code, rec.Body)
		}
	})
}
