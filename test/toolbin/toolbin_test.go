package toolbin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bad override and a tool with nothing cached are both "unavailable",
// named after the tool.
func TestPathUnavailable(t *testing.T) {
	tool := Tool{Name: "nope", What: "nope", EnvVar: "PILOT_TOOLBIN_TEST_BIN", Script: "nope.sh", Module: "example.com/nope"}
	t.Setenv(tool.EnvVar, filepath.Join(t.TempDir(), "nope"))
	_, err := tool.Path()
	if !Unavailable(err) || !strings.HasPrefix(err.Error(), "nope binary unavailable: PILOT_TOOLBIN_TEST_BIN=") {
		t.Errorf("bad override: %v, want unavailable", err)
	}
	t.Setenv(tool.EnvVar, "")
	if _, err := tool.Path(); !Unavailable(err) { // no test/tools/nope/go.mod
		t.Errorf("nothing pinned: %v, want unavailable", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(tool.EnvVar, exe)
	if p, err := tool.Path(); err != nil || p != exe {
		t.Errorf("override: %q, %v; want %q", p, err, exe)
	}
}

// recorder is a testing.TB that keeps what Skipf or Fatalf said.
type recorder struct {
	testing.TB
	said string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Name() string              { return "TestX" }
func (r *recorder) Skipf(f string, a ...any)  { r.said = "skip: " + fmt.Sprintf(f, a...) }
func (r *recorder) Fatalf(f string, a ...any) { r.said = "fatal: " + fmt.Sprintf(f, a...) }
func (r *recorder) outcome(tool Tool, err error) string {
	r.said = ""
	tool.Require(r, err)
	return r.said
}

func TestRequire(t *testing.T) {
	tool := Tool{Name: "consul", What: "consul agent", EnvVar: "PILOT_CONSUL_BIN", Script: "consul.sh"}
	missing := fmt.Errorf("consul %w: why", ErrUnavailable)
	r := &recorder{}
	if got := r.outcome(tool, nil); got != "" {
		t.Errorf("nil: %q", got)
	}
	want := "fatal: consul binary unavailable: consul binary unavailable: why (set PILOT_CONSUL_BIN or run `bash test/consul.sh`)"
	for _, ci := range []string{"", "1"} { // a missing binary fails, in CI or not
		t.Setenv("CI", ci)
		if got := r.outcome(tool, missing); got != want {
			t.Errorf("missing (CI=%q):\n got %q\nwant %q", ci, got, want)
		}
	}
	if got, want := r.outcome(tool, errors.New("boom")), "fatal: starting consul agent: boom"; got != want {
		t.Errorf("failure: %q, want %q", got, want)
	}
}
