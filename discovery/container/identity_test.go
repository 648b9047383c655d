package container

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// The real Engine API client satisfies Inspector.
var _ Inspector = (*client.Client)(nil)

// fakeInspector answers ContainerInspect from a fixture, or with err.
type fakeInspector struct {
	res    client.ContainerInspectResult
	err    error
	gotID  string
	gotOpt client.ContainerInspectOptions
}

func (f *fakeInspector) ContainerInspect(_ context.Context, id string, opt client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	f.gotID, f.gotOpt = id, opt
	return f.res, f.err
}

const fixtureID = "715dc8493c36579a5b116995100f635e3572fdf8703e708ef1a08d943b36774e"

// inspectFixture is testdata/inspect-1.41.json: a Compose service's
// container as Engine API 1.41 describes it.
func inspectFixture(t testing.TB) (raw []byte, res client.ContainerInspectResult) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "inspect-1.41.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ct container.InspectResponse
	if err := json.Unmarshal(raw, &ct); err != nil {
		t.Fatal(err)
	}
	return raw, client.ContainerInspectResult{Container: ct, Raw: raw}
}

// fixtureIdentity is what Inspect makes of the fixture.
var fixtureIdentity = Identity{
	ID:       fixtureID,
	Name:     "shop-api-2",
	Hostname: "715dc8493c36",
	Image:    "registry.example.com/shop/api:1.8.2",
	Project:  "shop",
	Service:  "api",
	Replica:  2,
	Addresses: map[string]string{
		"shop_default": "172.19.0.4",
		"shop_v6":      "fd00:dead:beef::4",
	},
}

func equalIdentity(a, b Identity) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Hostname == b.Hostname &&
		a.Image == b.Image && a.Project == b.Project && a.Service == b.Service &&
		a.Replica == b.Replica && maps.Equal(a.Addresses, b.Addresses)
}

func TestInspect(t *testing.T) {
	_, res := inspectFixture(t)
	f := &fakeInspector{res: res}
	got, err := Inspect(context.Background(), f, fixtureID)
	if err != nil {
		t.Fatal(err)
	}
	if !equalIdentity(got, fixtureIdentity) {
		t.Errorf("Inspect =\n%+v\nwant\n%+v", got, fixtureIdentity)
	}
	if f.gotID != fixtureID || f.gotOpt.Size {
		t.Errorf("asked for %q with %+v; want %q without size", f.gotID, f.gotOpt, fixtureID)
	}
}

func TestInspectSparse(t *testing.T) {
	// A plain `docker run` container: no compose labels, no networks
	// section, a name only.
	f := &fakeInspector{res: client.ContainerInspectResult{Container: container.InspectResponse{
		Name:   "/brave_turing",
		Config: &container.Config{Image: "node:22", Labels: map[string]string{labelNumber: "x"}},
	}}}
	got, err := Inspect(context.Background(), f, fixtureID)
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{ID: fixtureID, Name: "brave_turing", Image: "node:22"}
	if !equalIdentity(got, want) {
		t.Errorf("Inspect = %+v, want %+v", got, want)
	}
}

func TestInspectErrors(t *testing.T) {
	boom := errors.New("boom")
	if _, err := Inspect(context.Background(), &fakeInspector{err: boom}, fixtureID); !errors.Is(err, boom) {
		t.Errorf("Inspect error = %v, want it to wrap %v", err, boom)
	}
	f := &fakeInspector{}
	if _, err := Inspect(context.Background(), f, ""); err == nil || f.gotID != "" {
		t.Errorf("Inspect of an empty id = %v (asked %q), want an error without asking", err, f.gotID)
	}
}

var consulMetaKey = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

func TestMeta(t *testing.T) {
	got := fixtureIdentity.Meta()
	want := map[string]string{
		"container_id":    fixtureID,
		"container_name":  "shop-api-2",
		"image":           "registry.example.com/shop/api:1.8.2",
		"compose_project": "shop",
		"compose_service": "api",
		"compose_replica": "2",
	}
	if !maps.Equal(got, want) {
		t.Errorf("Meta = %v, want %v", got, want)
	}

	// Only what is set; nothing at all is nil.
	if got := (Identity{ID: fixtureID, Hostname: "h"}).Meta(); !maps.Equal(got, map[string]string{"container_id": fixtureID}) {
		t.Errorf("cgroup-only Meta = %v", got)
	}
	if got := (Identity{}).Meta(); got != nil {
		t.Errorf("empty Meta = %v, want nil", got)
	}

	// Consul's limits: keys by its pattern, values at most 512 bytes, cut
	// at a character boundary.
	long := Identity{
		ID:    fixtureID,
		Image: strings.Repeat("a", 511) + "é" + "tail", // é straddles byte 512
		Name:  strings.Repeat("n", 2000),
	}
	m := long.Meta()
	for k, v := range m {
		if !consulMetaKey.MatchString(k) {
			t.Errorf("meta key %q is not a Consul meta key", k)
		}
		if len(v) > 512 || !utf8.ValidString(v) {
			t.Errorf("meta %s: %d bytes, valid UTF-8 %v", k, len(v), utf8.ValidString(v))
		}
	}
	if m["image"] != strings.Repeat("a", 511) {
		t.Errorf("image cut to %d bytes, want 511", len(m["image"]))
	}
	if len(m["container_name"]) != 512 {
		t.Errorf("container_name cut to %d bytes, want 512", len(m["container_name"]))
	}
}
