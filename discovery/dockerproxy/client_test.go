package dockerproxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// The real Docker client, through the proxy: it negotiates its API version
// (a HEAD /_ping), lists containers, and a create comes back as an error
// that says why — against an engine at a current API version and one at
// the client's minimum, 1.40.
func TestProxyWithMobyClient(t *testing.T) {
	t.Parallel()
	if client.MinAPIVersion != "1.40" {
		t.Errorf("the client's minimum API version is %s; this test was written for 1.40", client.MinAPIVersion)
	}
	for _, api := range []string{"1.47", client.MinAPIVersion} {
		t.Run("API "+api, func(t *testing.T) {
			t.Parallel()
			e := newFakeEngineAt(t, api)
			addr := startProxy(t, New(e.sock, nil))
			cli, err := client.New(client.WithHost("tcp://" + addr))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cli.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true})
			if err != nil {
				t.Fatalf("ContainerList: %v", err)
			}
			if len(list.Items) != 1 || list.Items[0].ID != "3f4e5d6c7b8a" || list.Items[0].Labels["com.docker.compose.service"] != "web" {
				t.Fatalf("ContainerList: %+v", list.Items)
			}
			if v := cli.ClientVersion(); v != api {
				t.Errorf("negotiated API version %s, want the engine's %s", v, api)
			}

			_, err = cli.ContainerCreate(ctx, client.ContainerCreateOptions{
				Config:     &container.Config{Image: "alpine", Cmd: []string{"sh"}},
				HostConfig: &container.HostConfig{Privileged: true, Binds: []string{"/:/host"}},
			})
			if err == nil || !strings.Contains(err.Error(), "not allowed") {
				t.Fatalf("ContainerCreate: err %v, want one saying it is not allowed", err)
			}
			t.Logf("ContainerCreate through the proxy: %v", err)

			var got []string
			for _, r := range e.requests() {
				got = append(got, r.method+" "+r.path)
			}
			if want := []string{"HEAD /_ping", "GET /v" + api + "/containers/json"}; strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("the engine saw %q, want %q (and never the create)", got, want)
			}
		})
	}
}
