package traefik

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/traefik/paerser/parser"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var full = Settings{
	Rule: "Host(`shop.example`) && PathPrefix(`/api`)", EntryPoints: []string{"web", "websecure"},
	Middlewares: []string{"gzip", "ratelimit"}, Priority: 10, ServerPort: 3000, StickyCookie: "srv",
	HealthCheck: &HealthCheck{Path: "/health", Interval: "5s", Timeout: "2s"},
}

func TestTagsGolden(t *testing.T) {
	for name, s := range map[string]Settings{
		"minimal": {Rule: "PathPrefix(`/`)"},
		"full":    full,
	} {
		t.Run(name, func(t *testing.T) {
			tags, err := Tags("Web.App", 8080, s)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(tags, "\n") + "\n"
			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Fatalf("tags:\n%s\nwant:\n%s", got, want)
			}
			for _, tag := range tags {
				key, _, _ := strings.Cut(tag, "=")
				if key != strings.ToLower(key) {
					t.Errorf("key not lower-case: %s", key)
				}
			}
		})
	}
}

// traefikHTTP has the shape of Traefik v3's dynamic.HTTPConfiguration for
// the fields pilot sets, including Traefik's own label-slice-as-struct
// mapping of loadbalancer.server.* onto Servers[0].
type traefikHTTP struct {
	HTTP *struct {
		Routers map[string]*struct {
			EntryPoints []string
			Middlewares []string
			Service     string
			Rule        string
			Priority    int
		}
		Services map[string]*struct {
			LoadBalancer *struct {
				Sticky *struct {
					Cookie *struct{ Name string }
				}
				Servers []struct {
					Port string
					URL  string `label:"-"`
				} `label-slice-as-struct:"server"`
				HealthCheck *struct{ Path, Interval, Timeout string }
			}
		}
	}
}

// Decoding the tags the way Traefik's Consul Catalog provider does gives
// back every setting.
func TestTagsRoundTripThroughTraefiksParser(t *testing.T) {
	tags, err := Tags("web", 8080, full)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	for _, tag := range tags {
		k, v, _ := strings.Cut(tag, "=")
		labels[k] = v
	}
	if labels["traefik.enable"] != "true" {
		t.Fatal("traefik.enable=true missing")
	}
	var got traefikHTTP
	if err := parser.Decode(labels, &got, parser.DefaultRootName, "traefik.http"); err != nil {
		t.Fatal(err)
	}
	r := got.HTTP.Routers["web"]
	if r == nil || r.Rule != full.Rule || !reflect.DeepEqual(r.EntryPoints, full.EntryPoints) ||
		!reflect.DeepEqual(r.Middlewares, full.Middlewares) || r.Priority != 10 || r.Service != "web" {
		t.Fatalf("router %+v", r)
	}
	lb := got.HTTP.Services["web"].LoadBalancer
	if lb.Sticky.Cookie.Name != "srv" || lb.HealthCheck.Path != "/health" || lb.HealthCheck.Interval != "5s" ||
		lb.HealthCheck.Timeout != "2s" {
		t.Fatalf("load balancer %+v", lb)
	}
	if len(lb.Servers) != 1 || lb.Servers[0].Port != "3000" {
		t.Fatalf("servers %+v", lb.Servers)
	}
}

func TestTagsNeedARule(t *testing.T) {
	if _, err := Tags("web", 8080, Settings{}); err == nil || !strings.Contains(err.Error(), "traefik.rule") {
		t.Fatalf("got %v", err)
	}
}
