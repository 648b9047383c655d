package container

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// procFixture is the proc root of one case under testdata/proc.
func procFixture(name string) fs.FS {
	return os.DirFS(filepath.Join("testdata", "proc", name))
}

func TestID(t *testing.T) {
	tests := []struct {
		proc string
		want string // "" means ErrNotContainer
	}{
		// cgroup v1: every controller line names the container.
		{"v1-docker", "d548c5b83fa61d8e3bd86ad42a7ffea9b7c86e3f9d8095c1577d3e1270bb9420"},
		{"v1-kubepods", "7ab9b39a15b5b065f62b7d99d0e69e8f90ad69308a6ae873a8bbe70255646867"},
		{"v1-systemd", "5f161c9149882e0e10124bc5dd5c11f0fbe8ec452edd52bcec76b01e9252cb33"},
		// Docker in Docker: the innermost id is ours.
		{"v1-nested", "33bf6fbd7cd8379785a21e233d8e09f824e7bab459168a96312c1c882c1d7e1f"},
		// cgroup v2, host cgroup namespace.
		{"v2-host-scope", "5ea811f2f5dc8aa7748ffa6cd5995b4c1315df482af97f4f1b3c714f0421ef48"},
		{"v2-host-docker", "d221941dd90b111fcd83f274de1786fe0ab7e5f6c8aff690cde06289cd61b88d"},
		{"v2-host-k8s", "3dd15efbff4406c10bdd4d3a5bdf9a0ef3e28e8598cad6250d8fbb589c059af5"},
		{"v2-host-podman", "409d6a88b2635ae831a3a7e86dee6bbc0f5cbfd3606a54c6fd690f50bd61e1c1"},
		// cgroup v2, private cgroup namespace: "0::/", so mountinfo. The
		// overlay layer and the volume, both 64-hex, are not taken.
		{"v2-private-docker", "715dc8493c36579a5b116995100f635e3572fdf8703e708ef1a08d943b36774e"},
		{"v2-private-docker-dataroot", "3f49dbbfe051cb20cc038923424fedf8d18307cc805e1520e4168e9360e2eb38"},
		{"v2-private-podman", "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9"},
		{"v2-private-nerdctl", "aa470170773aae4a69e6e0a509eb8c1f304140b1fea1a2d55ec93a07a78e497c"},
		// The pod sandbox's id is not this container's.
		{"v2-private-k8s-sandbox", ""},
		// Not in a container.
		{"host", ""},
		{"host-systemd-service", ""},
		{"empty", ""},
		{"garbage", ""},
	}
	for _, tt := range tests {
		t.Run(tt.proc, func(t *testing.T) {
			got, err := ID(procFixture(tt.proc))
			if tt.want == "" {
				if !errors.Is(err, ErrNotContainer) || got != "" {
					t.Fatalf("ID = %q, %v; want \"\", ErrNotContainer", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ID = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestIDMapFS(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name      string
		cgroup    string
		mountinfo string
		want      string
	}{
		{"cgroup wins over mountinfo", "0::/docker/" + id + "\n",
			"1 0 8:1 /var/lib/docker/containers/" + "f" + id[1:] + "/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n", id},
		{"no trailing newline", "0::/docker/" + id, "", id},
		{"crio scope", "0::/kubepods.slice/crio-" + id + ".scope\n", "", id},
		{"systemd unit in the container's cgroup", "0::/docker/" + id + "/init.scope\n", "", id},
		{"only mountinfo, resolv.conf", "0::/\n",
			"1 0 8:1 /containers/" + id + "/resolv.conf /etc/resolv.conf rw - ext4 /dev/sda1 rw\n", id},
		{"mount point escaped", "0::/\n",
			`1 0 8:1 /x\040y/containers/` + id + `/hosts /etc/hosts rw - ext4 /dev/sda1 rw` + "\n", id},
		{"id as the mounted file itself is not a directory", "0::/\n",
			"1 0 8:1 /containers/" + id + " /etc/hostname rw - ext4 /dev/sda1 rw\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"self/cgroup":    {Data: []byte(tt.cgroup)},
				"self/mountinfo": {Data: []byte(tt.mountinfo)},
			}
			got, err := ID(fsys)
			if tt.want == "" {
				if !errors.Is(err, ErrNotContainer) {
					t.Fatalf("ID = %q, %v; want ErrNotContainer", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ID = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// errFS fails every open with err.
type errFS struct{ err error }

func (e errFS) Open(string) (fs.File, error) { return nil, e.err }

func TestIDReadError(t *testing.T) {
	got, err := ID(errFS{fs.ErrPermission})
	if got != "" || !errors.Is(err, fs.ErrPermission) || errors.Is(err, ErrNotContainer) {
		t.Fatalf("ID = %q, %v; want a permission error, not ErrNotContainer", got, err)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:    "/a b",
		`/a\011b`:    "/a\tb",
		`/a\134b`:    `/a\b`,
		`/plain`:     "/plain",
		`/short\04`:  `/short\04`,
		`/notoct\09`: `/notoct\09`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
