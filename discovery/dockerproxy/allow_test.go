package dockerproxy

import (
	"net/http"
	"net/url"
	"testing"
)

// The allow-list, as a client on the wire sends it: the target is parsed
// as net/http's server parses a request line, and its escaped path is what
// the proxy matches.
func TestAllowedProxy(t *testing.T) {
	t.Parallel()
	const (
		GET, HEAD, POST, PUT, DELETE = http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete
	)
	cases := []struct {
		method, target string
		forward        string // "" = refused
	}{
		// what a client reading the engine needs
		{GET, "/_ping", "/_ping"},
		{HEAD, "/_ping", "/_ping"},
		{GET, "/v1.47/_ping", "/v1.47/_ping"},
		{GET, "/version", "/version"},
		{GET, "/v1.40/version", "/v1.40/version"},
		{GET, "/info", "/info"},
		{GET, "/v1.51/info", "/v1.51/info"},
		{GET, "/containers/json", "/containers/json"},
		{GET, "/v1.45/containers/json?all=1&filters=%7B%22label%22%3A%5B%22com.docker.compose.project%3Dx%22%5D%7D", "/v1.45/containers/json"},
		{HEAD, "/containers/json", "/containers/json"},
		{GET, "/containers/3f4e5d6c7b8a/json", "/containers/3f4e5d6c7b8a/json"},
		{GET, "/v1.47/containers/app-web-1/json?size=1", "/v1.47/containers/app-web-1/json"},
		{GET, "/containers/my_app.web-1/json", "/containers/my_app.web-1/json"},
		{GET, "/containers/json/json", "/containers/json/json"}, // inspect of a container named json
		{GET, "/events", "/events"},
		{GET, "/v1.47/events?since=0&filters=%7B%7D", "/v1.47/events"},
		{GET, "/networks", "/networks"},
		{GET, "/networks/app_default", "/networks/app_default"},
		{GET, "/v1.44/networks/bridge", "/v1.44/networks/bridge"},
		// canonical forms of allowed paths: what is sent is what was matched
		{GET, "/containers/json/", "/containers/json"},
		{GET, "//containers/json", "/containers/json"},
		{GET, "/containers/./json", "/containers/json"},
		{GET, "/containers/abc/../json", "/containers/json"},

		// writes, whatever the path
		{POST, "/containers/create", ""},
		{POST, "/v1.47/containers/create", ""},
		{POST, "/containers/json", ""},
		{PUT, "/containers/json", ""},
		{DELETE, "/containers/abc", ""},
		{DELETE, "/containers/abc/json", ""},
		{POST, "/containers/abc/start", ""},
		{POST, "/networks/create", ""},
		{POST, "/networks/abc/connect", ""},
		{http.MethodPatch, "/info", ""},
		{http.MethodOptions, "/_ping", ""},
		{"CONNECT", "/containers/json", ""},
		{"get", "/containers/json", ""},
		// reads that leak or lead further than discovery needs
		{GET, "/containers/abc/logs?stdout=1", ""},
		{GET, "/containers/abc/archive?path=/etc/shadow", ""},
		{HEAD, "/containers/abc/archive?path=/", ""},
		{GET, "/containers/abc/export", ""},
		{GET, "/containers/abc/top", ""},
		{GET, "/containers/abc/stats", ""},
		{GET, "/containers/abc/changes", ""},
		{GET, "/containers/abc/attach/ws", ""},
		{POST, "/containers/abc/exec", ""},
		{GET, "/exec/abc/json", ""},
		{POST, "/exec/abc/start", ""},
		{GET, "/images/json", ""},
		{GET, "/images/abc/get", ""},
		{POST, "/images/create?fromImage=alpine", ""},
		{GET, "/secrets", ""},
		{GET, "/configs", ""},
		{GET, "/swarm", ""},
		{GET, "/services", ""},
		{GET, "/nodes", ""},
		{GET, "/volumes", ""},
		{GET, "/plugins", ""},
		{GET, "/system/df", ""},
		{GET, "/distribution/alpine/json", ""},
		{POST, "/session", ""},
		{POST, "/build", ""},
		{GET, "/", ""},
		{GET, "/containers", ""},
		{GET, "/v1.47", ""},
		{GET, "/v1.47/", ""},
		// path tricks
		{POST, "/containers/x/../create", ""},
		{GET, "/containers/x/../create", ""},
		{GET, "/containers/json/../abc/logs", ""},
		{GET, "/v1.47/../containers/abc/logs", ""},
		{GET, "//containers", ""},
		{GET, "/containers/abc/json/../logs", ""},
		{GET, "/containers/..", ""},
		{GET, "/containers/../../etc/passwd", ""},
		{GET, "/containers/abc%2Fjson", ""},
		{GET, "/containers/abc%2F..%2Fcreate/json", ""},
		{GET, "/containers%2Fjson", ""},
		{GET, "/v1.47%2Fcontainers%2Fjson", ""},
		{GET, "/containers/%6Ason", ""}, // "json", escaped
		{GET, "/containers/%2e%2e/exec/json", ""},
		{GET, "/containers/abc%00/json", ""},
		{GET, "/containers/.hidden/json", ""},
		{GET, "/containers/-abc/json", ""},
		{GET, "/containers/a b/json", ""},
		{GET, "/networks/abc/extra", ""},
		{GET, "/v1.47/v1.47/containers/json", ""},
		{GET, "/v2.0/containers/json", ""},
		{GET, "/v1.x/containers/json", ""},
		{GET, "/V1.47/containers/json", ""},
		{GET, "/CONTAINERS/JSON", ""},
		{GET, "/_ping/../images/json", ""},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		u, err := url.ParseRequestURI(c.target)
		if err != nil {
			// a target net/http would refuse before any handler runs
			t.Errorf("%s %s: %v", c.method, c.target, err)
			continue
		}
		got, ok := Allowed(c.method, u.EscapedPath())
		switch {
		case c.forward == "" && ok:
			t.Errorf("%s %s: allowed, forwarded as %s; want refused", c.method, c.target, got)
		case c.forward != "" && !ok:
			t.Errorf("%s %s: refused; want forwarded as %s", c.method, c.target, c.forward)
		case got != c.forward:
			t.Errorf("%s %s: forwarded as %q, want %q", c.method, c.target, got, c.forward)
		}
	}
}

// A raw escaped path that is not a URL's (no leading slash, empty) is
// refused too.
func TestAllowedProxyOddPaths(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "*", "containers/json", "http://x/containers/json"} {
		if fwd, ok := Allowed(http.MethodGet, p); ok {
			t.Errorf("GET %q: allowed as %q", p, fwd)
		}
	}
}
