package render

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestApplyCreates(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "backend.conf")
	changed, err := Apply(dest, []byte("one\n"), 0o640)
	if err != nil || !changed {
		t.Fatalf("Apply = %v, %v; want true, nil", changed, err)
	}
	assertFile(t, dest, "one\n", 0o640)
	assertNoTemp(t, filepath.Dir(dest))

	dest2 := filepath.Join(filepath.Dir(dest), "default.conf")
	if _, err := Apply(dest2, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	assertFile(t, dest2, "x", 0o644)
}

func TestApplyUnchangedDoesNotWrite(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "backend.conf")
	if err := os.WriteFile(dest, []byte("same\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(dest, old, old); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(dest)

	changed, err := Apply(dest, []byte("same\n"), 0o644)
	if err != nil || changed {
		t.Fatalf("Apply = %v, %v; want false, nil", changed, err)
	}
	after, _ := os.Stat(dest)
	if !os.SameFile(before, after) {
		t.Error("the file was replaced (new inode)")
	}
	if !after.ModTime().Equal(old) {
		t.Errorf("mtime changed: %v, was %v", after.ModTime(), old)
	}
	assertFile(t, dest, "same\n", 0o600)
}

func TestApplyChangedKeepsMode(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "backend.conf")
	if err := os.WriteFile(dest, []byte("old content\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, content := range []string{"new\n", "same len\n", "same LEN\n", ""} {
		changed, err := Apply(dest, []byte(content), 0o644)
		if err != nil || !changed {
			t.Fatalf("Apply(%q) = %v, %v; want true, nil", content, changed, err)
		}
		assertFile(t, dest, content, 0o600)
	}
	assertNoTemp(t, filepath.Dir(dest))
}

func TestApplyThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.conf")
	link := filepath.Join(dir, "link.conf")
	if err := os.WriteFile(target, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.conf", link); err != nil {
		t.Fatal(err)
	}
	if changed, err := Apply(link, []byte("new"), 0o644); err != nil || !changed {
		t.Fatalf("Apply = %v, %v", changed, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v, %v", fi, err)
	}
	assertFile(t, target, "new", 0o640)
}

func TestApplyMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "no", "such")
	dest := filepath.Join(dir, "backend.conf")
	changed, err := Apply(dest, []byte("x"), 0o644)
	if err == nil || changed {
		t.Fatalf("Apply = %v, %v; want an error", changed, err)
	}
	for _, want := range []string{dest, "directory " + dir, "no such file or directory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestApplyNotARegularFile(t *testing.T) {
	dest := t.TempDir()
	if _, err := Apply(dest, []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("err = %v", err)
	}
}

// TestApplyAtomic has readers read dest in a loop while many applies swap
// its content: every read must be one of the complete contents.
func TestApplyAtomic(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "backend.conf")
	contents := [][]byte{
		bytes.Repeat([]byte("a"), 256<<10),
		bytes.Repeat([]byte("bc"), 100<<10+7),
		[]byte("short\n"),
	}
	if _, err := Apply(dest, contents[0], 0o644); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				b, err := os.ReadFile(dest)
				if err != nil {
					errs <- err.Error()
					return
				}
				if !bytes.Equal(b, contents[0]) && !bytes.Equal(b, contents[1]) && !bytes.Equal(b, contents[2]) {
					errs <- fmt.Sprintf("read a partial or mixed file of %d bytes", len(b))
					return
				}
				reads.Add(1)
			}
		})
	}
	for i := range 200 {
		changed, err := Apply(dest, contents[(i+1)%len(contents)], 0o644)
		if err != nil || !changed {
			t.Errorf("apply %d = %v, %v", i, changed, err)
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if reads.Load() == 0 {
		t.Error("readers never read")
	}
	assertNoTemp(t, filepath.Dir(dest))
}

func assertFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != content {
		t.Errorf("%s = %q, want %q", path, b, content)
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".pilot-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}
