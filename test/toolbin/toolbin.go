// Package toolbin finds the external binaries that pilot's tests and
// benchmarks run for real (Consul, Traefik): each is built from a Go module
// pinned under test/tools/NAME by the script test/NAME.sh into
// .cache/NAME/VERSION/NAME, or named by an environment variable. It owns
// that lookup, the error that means "no binary" (ErrUnavailable) and the
// policy for it: a missing binary fails the test, in CI and out of it
// (Tool.Require; `make test-deps` builds them all).
package toolbin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ErrUnavailable wraps every reason a tool's binary could not be had.
var ErrUnavailable = errors.New("binary unavailable")

// Unavailable reports whether err means "no binary" (the test fails; Require says how to build it)
// rather than "the tool failed" (always a failure).
func Unavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// Tool is one external binary built from a module under test/tools.
type Tool struct {
	// Name is the tool's name: the module is pinned in
	// ROOT/test/tools/NAME/go.mod and the binary cached at
	// ROOT/.cache/NAME/VERSION/NAME; errors say "NAME binary unavailable".
	Name string
	// What names the thing a test needs in Require's messages
	// ("consul agent", "traefik").
	What string
	// EnvVar names the environment variable that, when set, is the
	// binary's path (no build, no cache).
	EnvVar string
	// Script is the build script under ROOT/test ("consul.sh"): it builds
	// the pinned version once and prints the cached binary's path.
	Script string
	// Module, when set, is the module path pinned in test/tools/NAME/go.mod
	// ("github.com/traefik/traefik/v3"), and Path never runs Script: it
	// only looks in the cache for the pinned version (for a build too long
	// to start from a test run).
	Module string
	// Hint tells how to get the binary, in Require's messages; default
	// "set ENVVAR or run `bash test/SCRIPT`".
	Hint string
}

// hint is t.Hint or its default.
func (t Tool) hint() string {
	if t.Hint != "" {
		return t.Hint
	}
	return fmt.Sprintf("set %s or run `bash test/%s`", t.EnvVar, t.Script)
}

// Path returns the binary's path: $ENVVAR when set; else, with Module set,
// ROOT/.cache/NAME/VERSION/NAME for the pinned VERSION; else what
// `bash ROOT/test/SCRIPT` prints (at most 12 minutes: a first build takes
// several). ROOT is RepoRoot. Every failure satisfies Unavailable.
func (t Tool) Path() (string, error) {
	if p := os.Getenv(t.EnvVar); p != "" {
		if !executable(p) {
			return "", t.unavailable("%s=%q is not an executable", t.EnvVar, p)
		}
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", t.unavailable("%v", err)
	}
	if t.Module != "" {
		version, err := t.version(root)
		if err != nil {
			return "", t.unavailable("%v", err)
		}
		p := filepath.Join(root, ".cache", t.Name, version, t.Name)
		if !executable(p) {
			return "", t.unavailable("%s not built", p)
		}
		return p, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "test", t.Script))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", t.unavailable("test/%s: %v: %s", t.Script, err, strings.TrimSpace(stderr.String()))
	}
	p := strings.TrimSpace(string(out))
	if !executable(p) {
		return "", t.unavailable("test/%s printed %q, which is not an executable", t.Script, p)
	}
	return p, nil
}

// unavailable is "NAME binary unavailable: WHY", wrapping ErrUnavailable.
func (t Tool) unavailable(format string, a ...any) error {
	return fmt.Errorf("%s %w: %s", t.Name, ErrUnavailable, fmt.Sprintf(format, a...))
}

// Version returns the version of Module pinned in
// ROOT/test/tools/NAME/go.mod: the first line naming it, as the build
// scripts' awk reads it.
func (t Tool) Version() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return t.version(root)
}

func (t Tool) version(root string) (string, error) {
	gomod := filepath.Join(root, "test", "tools", t.Name, "go.mod")
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == t.Module {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("no %s version pinned in %s", t.Module, gomod)
}

// Require turns the error of starting the tool (Path's, or a later one)
// into the test's outcome: nothing for nil, else a failure. A missing
// binary fails too, in CI and out of it: a test that skips proves nothing,
// and `make test-deps` builds every tool.
func (t Tool) Require(tb testing.TB, err error) {
	tb.Helper()
	switch {
	case err == nil:
	case Unavailable(err):
		tb.Fatalf("%s binary unavailable: %v (%s)", t.Name, err, t.hint())
	default:
		tb.Fatalf("starting %s: %v", t.What, err)
	}
}

// RequireCommand returns the path of a command the machine provides (node,
// nginx; test/install-deps.sh installs them), looking in PATH and then in
// /usr/sbin, which is not in every PATH. A missing one fails the test.
func RequireCommand(tb testing.TB, name string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join("/usr/sbin", name); executable(p) {
		return p
	}
	tb.Fatalf("%s not found in PATH or /usr/sbin (bash test/install-deps.sh installs it)", name)
	return ""
}

const modulePath = "github.com/nodepilot/pilot"

// RepoRoot returns pilot's repository root, found by walking up from the
// working directory to the go.mod of module github.com/nodepilot/pilot.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(b), "module "+modulePath+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no %s go.mod above the working directory", modulePath)
		}
		dir = parent
	}
}

func executable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// LockedBuffer is a bytes.Buffer safe for concurrent writers and readers:
// a started process's output, read by the test while it runs.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
