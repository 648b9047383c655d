package traefikproc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodepilot/pilot/test/toolbin"
)

// The version comes from the tool module's go.mod, as test/traefik.sh reads it.
func TestPinnedVersion(t *testing.T) {
	v, err := Tool.Version()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "v3.") {
		t.Errorf("pinned version %q, want v3.x", v)
	}
	missing := Tool
	missing.Name = "no-such-tool" // test/tools/no-such-tool/go.mod does not exist
	if _, err := missing.Version(); err == nil {
		t.Error("no error for a missing go.mod")
	}
}

// A bad $PILOT_TRAEFIK_BIN is "unavailable" (a skip outside CI), and so is
// a cache without the binary.
func TestBinaryUnavailable(t *testing.T) {
	t.Setenv("PILOT_TRAEFIK_BIN", filepath.Join(t.TempDir(), "nope"))
	if _, err := Tool.Path(); !toolbin.Unavailable(err) {
		t.Errorf("bad PILOT_TRAEFIK_BIN: %v, want unavailable", err)
	}
	t.Setenv("PILOT_TRAEFIK_BIN", "")
	p, err := Tool.Path()
	switch {
	case err == nil:
		t.Logf("built: %s", p)
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	case toolbin.Unavailable(err):
		t.Logf("not built: %v", err)
	default:
		t.Errorf("error %v is not Unavailable", err)
	}
}
