package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/NAME.golden, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func inst(id, addr string, port int) Instance {
	return Instance{ID: id, Node: "node-" + id, Address: addr, Port: port, Status: "passing",
		Tags: []string{"v1"}, Meta: map[string]string{"zone": "a"}}
}

// snapshots are the golden cases, shared by both renderers; instances are
// in canonical order (by ID).
var snapshots = map[string]Snapshot{
	"empty": {Service: "backend"},
	"one":   {Service: "backend", Instances: []Instance{inst("web-1", "10.0.0.1", 3000)}},
	"three": {Service: "backend", Instances: []Instance{
		inst("web-1", "10.0.0.3", 3000), inst("web-2", "10.0.0.1", 3001), inst("web-3", "localhost", 3000),
	}},
	"ipv6": {Service: "backend", Instances: []Instance{
		inst("a", "::1", 80), inst("b", "2001:DB8::10", 8080), inst("c", "10.0.0.1", 80),
	}},
	"odd-name": {Service: "Web.App/v2_☃\n}", Instances: []Instance{inst("x", "10.0.0.1", 3000)}},
}

func TestNGINXGolden(t *testing.T) {
	cases := map[string]struct {
		snap Snapshot
		opts NGINXOptions
	}{}
	for name, s := range snapshots {
		cases[name] = struct {
			snap Snapshot
			opts NGINXOptions
		}{s, NGINXOptions{}}
	}
	cases["options"] = struct {
		snap Snapshot
		opts NGINXOptions
	}{snapshots["three"], NGINXOptions{Name: "backend_v1", Balance: "least_conn", MaxFails: new(3), FailTimeout: 15 * time.Second, Keepalive: 16}}
	cases["options-empty"] = struct {
		snap Snapshot
		opts NGINXOptions
	}{snapshots["empty"], NGINXOptions{Balance: "ip_hash", MaxFails: new(0), FailTimeout: 10 * time.Second, Keepalive: 8}}

	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			before := deepCopy(c.snap)
			got, err := NGINX(c.snap, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := NGINX(c.snap, c.opts)
			if !bytes.Equal(got, again) {
				t.Error("two renders of the same input differ")
			}
			if !reflect.DeepEqual(before, c.snap) {
				t.Error("the snapshot was modified")
			}
			var body []byte // without comments
			for _, l := range bytes.SplitAfter(got, []byte("\n")) {
				if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
					body = append(body, l...)
				}
			}
			if n := bytes.Count(body, []byte("{")); n != 1 || bytes.Count(body, []byte("}")) != 1 || bytes.Count(body, []byte("\n")) < 3 {
				t.Errorf("want exactly one block, got %d '{':\n%s", n, got)
			}
			if len(c.snap.Instances) == 0 && !bytes.Contains(got, []byte("server "+Placeholder+" down;")) {
				t.Error("an empty upstream must hold the down placeholder")
			}
			golden(t, "nginx-"+name, got)
		})
	}
}

// traefikDoc is the part of Traefik's dynamic configuration pilot writes.
type traefikDoc struct {
	HTTP struct {
		Routers map[string]struct {
			Rule        string   `yaml:"rule"`
			EntryPoints []string `yaml:"entryPoints"`
			Middlewares []string `yaml:"middlewares"`
			Priority    int      `yaml:"priority"`
			Service     string   `yaml:"service"`
		} `yaml:"routers"`
		Services map[string]struct {
			LoadBalancer struct {
				PassHostHeader *bool `yaml:"passHostHeader"`
				HealthCheck    *struct {
					Path, Interval, Timeout string
				} `yaml:"healthCheck"`
				Servers []struct {
					URL string `yaml:"url"`
				} `yaml:"servers"`
			} `yaml:"loadBalancer"`
		} `yaml:"services"`
	} `yaml:"http"`
}

func TestTraefikGolden(t *testing.T) {
	type tc struct {
		snap Snapshot
		opts TraefikOptions
	}
	cases := map[string]tc{}
	for name, s := range snapshots {
		cases[name] = tc{s, TraefikOptions{}}
	}
	router := &TraefikRouter{Rule: "Host(`shop.example`) && PathPrefix(`/api\"`)", EntryPoints: []string{"web", "websecure"},
		Middlewares: []string{"gzip"}, Priority: 10}
	cases["options"] = tc{snapshots["ipv6"], TraefikOptions{Name: "backend.v1", Scheme: "https", PassHostHeader: new(false),
		HealthCheck: &TraefikHealthCheck{Path: "/health", Interval: 5 * time.Second, Timeout: 1500 * time.Millisecond}, Router: router}}
	cases["options-empty"] = tc{snapshots["empty"], TraefikOptions{Router: &TraefikRouter{Rule: "PathPrefix(`/`)"}}}

	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			before := deepCopy(c.snap)
			got, err := Traefik(c.snap, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := Traefik(c.snap, c.opts)
			if !bytes.Equal(got, again) {
				t.Error("two renders of the same input differ")
			}
			if !reflect.DeepEqual(before, c.snap) {
				t.Error("the snapshot was modified")
			}

			// The output must be YAML that decodes to what was meant.
			var doc traefikDoc
			if err := yaml.Unmarshal(got, &doc); err != nil {
				t.Fatalf("not YAML: %v\n%s", err, got)
			}
			svc := c.opts.Name
			if svc == "" {
				svc = DefaultName(c.snap.Service)
			}
			s, ok := doc.HTTP.Services[svc]
			if !ok || len(doc.HTTP.Services) != 1 {
				t.Fatalf("want exactly service %q, got %v", svc, doc.HTTP.Services)
			}
			scheme := c.opts.Scheme
			if scheme == "" {
				scheme = "http"
			}
			var urls []string
			for _, srv := range s.LoadBalancer.Servers {
				urls = append(urls, srv.URL)
			}
			var want []string
			for _, in := range c.snap.Instances {
				hp, _ := hostPort(in)
				want = append(want, scheme+"://"+hp)
			}
			if !reflect.DeepEqual(urls, want) {
				t.Errorf("server URLs = %q, want %q", urls, want)
			}
			if r := c.opts.Router; r != nil {
				got := doc.HTTP.Routers[svc]
				if got.Rule != r.Rule || got.Service != svc || !reflect.DeepEqual(got.EntryPoints, r.EntryPoints) || got.Priority != r.Priority {
					t.Errorf("router = %+v, want %+v for service %q", got, r, svc)
				}
			} else if len(doc.HTTP.Routers) != 0 {
				t.Errorf("unexpected routers %v", doc.HTTP.Routers)
			}
			golden(t, "traefik-"+name, got)
		})
	}
}

func TestIPv6Bracketed(t *testing.T) {
	s := Snapshot{Service: "b", Instances: []Instance{inst("a", "::1", 80)}}
	n, _ := NGINX(s, NGINXOptions{})
	if !bytes.Contains(n, []byte("server [::1]:80;")) {
		t.Errorf("nginx:\n%s", n)
	}
	tr, _ := Traefik(s, TraefikOptions{})
	if !bytes.Contains(tr, []byte(`url: "http://[::1]:80"`)) {
		t.Errorf("traefik:\n%s", tr)
	}
}

func TestRenderErrors(t *testing.T) {
	one := func(addr string, port int) Snapshot {
		return Snapshot{Service: "b", Instances: []Instance{inst("bad-1", addr, port)}}
	}
	for _, c := range []struct {
		name    string
		snap    Snapshot
		nginx   NGINXOptions
		traefik TraefikOptions
		want    string
	}{
		{name: "port zero", snap: one("10.0.0.1", 0), want: `instance "bad-1" (node "node-bad-1"): port 0 out of range`},
		{name: "port high", snap: one("10.0.0.1", 70000), want: "port 70000 out of range"},
		{name: "address injection", snap: one("10.0.0.1; include /etc/passwd", 80), want: "is neither an IP nor a host name"},
		{name: "address quote", snap: one(`a"b`, 80), want: "is neither an IP nor a host name"},
		{name: "address empty", snap: one("", 80), want: "is neither an IP nor a host name"},
		{name: "zoned ipv6", snap: one("fe80::1%eth0", 80), want: "zoned IPv6"},
		{name: "no service name", snap: Snapshot{}, want: "no service name"},
		{name: "bad name", snap: one("10.0.0.1", 80), nginx: NGINXOptions{Name: "a}b"}, traefik: TraefikOptions{Name: "a}b"}, want: `name "a}b"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if out, err := NGINX(c.snap, c.nginx); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("NGINX: err = %v, want it to contain %q (out %q)", err, c.want, out)
			}
			if out, err := Traefik(c.snap, c.traefik); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Traefik: err = %v, want it to contain %q (out %q)", err, c.want, out)
			}
		})
	}
	s := snapshots["one"]
	for _, o := range []NGINXOptions{
		{Balance: "hash $x"}, {MaxFails: new(-1)}, {FailTimeout: time.Microsecond}, {FailTimeout: 1500 * time.Millisecond}, {FailTimeout: -time.Second}, {Keepalive: -1},
	} {
		if _, err := NGINX(s, o); err == nil {
			t.Errorf("NGINX(%+v): want an error", o)
		}
	}
	for _, o := range []TraefikOptions{
		{Scheme: "ftp"}, {HealthCheck: &TraefikHealthCheck{}}, {HealthCheck: &TraefikHealthCheck{Path: "/h", Interval: -1}},
		{Router: &TraefikRouter{}}, {Router: &TraefikRouter{Rule: "x", Priority: -1}},
	} {
		if _, err := Traefik(s, o); err == nil {
			t.Errorf("Traefik(%+v): want an error", o)
		}
	}
}

func TestDefaultName(t *testing.T) {
	for in, want := range map[string]string{
		"backend": "backend", "Web.App": "web-app", "a_b/c d": "a-b-c-d", "☃": "-", "API-v2": "api-v2",
	} {
		if got := DefaultName(in); got != want {
			t.Errorf("DefaultName(%q) = %q, want %q", in, got, want)
		}
	}
}

func deepCopy(s Snapshot) Snapshot {
	out := Snapshot{Service: s.Service}
	for _, in := range s.Instances {
		c := in
		c.Tags = append([]string(nil), in.Tags...)
		c.Meta = map[string]string{}
		for k, v := range in.Meta {
			c.Meta[k] = v
		}
		out.Instances = append(out.Instances, c)
	}
	return out
}

// One malformed instance (here an injection attempt and a port out of
// range) costs that instance only: Routable leaves it out with the reason,
// and the rest renders as if it were not there.
func TestRoutableSkipsBadInstances(t *testing.T) {
	s := Snapshot{Service: "backend", Instances: []Instance{
		inst("web-1", "10.0.0.3", 3000),
		inst("web-2", "10.0.0.1; include /etc/passwd", 3001),
		inst("web-3", "localhost", 3000),
		inst("web-4", "10.0.0.4", 0),
	}}
	before := deepCopy(s)
	ok, skipped := Routable(s)
	if !reflect.DeepEqual(before, s) {
		t.Error("the snapshot was modified")
	}
	want := []Skipped{
		{Instance: s.Instances[1], Reason: `address "10.0.0.1; include /etc/passwd" is neither an IP nor a host name`},
		{Instance: s.Instances[3], Reason: "port 0 out of range 1..65535"},
	}
	if !reflect.DeepEqual(skipped, want) {
		t.Errorf("skipped = %+v,\nwant %+v", skipped, want)
	}
	if len(ok.Instances) != 2 || ok.Instances[0].ID != "web-1" || ok.Instances[1].ID != "web-3" || ok.Service != "backend" {
		t.Fatalf("routable = %+v", ok)
	}
	n, err := NGINX(ok, NGINXOptions{})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "nginx-skips-bad", n)
	tr, err := Traefik(ok, TraefikOptions{})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "traefik-skips-bad", tr)

	// Nothing to skip: the same instances, and no list.
	all, none := Routable(snapshots["three"])
	if none != nil || !reflect.DeepEqual(all, snapshots["three"]) {
		t.Errorf("Routable(three) = %+v, %+v", all, none)
	}
	// Only bad ones: an empty (not absent) set, rendered fail-closed.
	empty, skipped := Routable(Snapshot{Service: "backend", Instances: s.Instances[1:2]})
	if len(skipped) != 1 || empty.Instances == nil || len(empty.Instances) != 0 {
		t.Errorf("Routable(bad only) = %+v, %+v", empty, skipped)
	}
}
