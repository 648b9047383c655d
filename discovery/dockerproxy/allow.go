package dockerproxy

import (
	"net/http"
	"path"
	"regexp"
	"strings"
)

// AllowedSummary names what the proxy lets through, for messages.
const AllowedSummary = "read-only: ping, version, info, containers list/inspect, events, networks"

var (
	// versionPrefix is the optional /v1.NN before an endpoint.
	versionPrefix = regexp.MustCompile(`^v1\.[0-9]{1,3}$`)
	// name is a container or network ID or name, as Docker allows them
	// (container names: [a-zA-Z0-9][a-zA-Z0-9_.-]+); it can never be "."
	// or "..".
	name = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$`)
)

// route is what a request asked for, once allowed.
type route struct {
	// path is the cleaned path to send upstream, version prefix included.
	path string
	// stream is set for /events, which lasts as long as the client wants.
	stream bool
}

// Allowed reports whether a request with this method and escaped path (as
// on the wire, url.URL.EscapedPath) is on the allow-list and, if so, the
// path to send upstream: the cleaned path that was matched.
func Allowed(method, escapedPath string) (forward string, ok bool) {
	r, ok := match(method, escapedPath)
	return r.path, ok
}

func match(method, escapedPath string) (route, bool) {
	if method != http.MethodGet && method != http.MethodHead {
		return route{}, false
	}
	// Without a %-escape, the escaped path is the decoded path: there is
	// no second reading of it for the upstream to make.
	if !strings.HasPrefix(escapedPath, "/") || strings.Contains(escapedPath, "%") {
		return route{}, false
	}
	cleaned := path.Clean(escapedPath)
	segs := strings.Split(cleaned[1:], "/")
	if len(segs) > 1 && versionPrefix.MatchString(segs[0]) {
		segs = segs[1:]
	}
	ok := false
	switch len(segs) {
	case 1:
		switch segs[0] {
		case "_ping", "version", "info", "events", "networks":
			ok = true
		}
	case 2:
		ok = segs[0] == "containers" && segs[1] == "json" ||
			segs[0] == "networks" && name.MatchString(segs[1])
	case 3:
		ok = segs[0] == "containers" && name.MatchString(segs[1]) && segs[2] == "json"
	}
	if !ok {
		return route{}, false
	}
	return route{path: cleaned, stream: len(segs) == 1 && segs[0] == "events"}, true
}
