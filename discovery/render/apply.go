package render

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Apply makes dest hold exactly content, atomically. When dest already
// holds these bytes it does nothing (no write, no new inode, no mtime
// change) and reports changed == false. Otherwise it writes a temporary file
// in dest's directory, gives it dest's current permission bits (or mode
// when dest does not exist; mode 0 means 0644) and renames it over dest, so
// a reader sees the old or the new content, never a mix.
//
// There is no fsync: a rendered file is derived state, rendered again from
// Consul at every start before the jobs that read it start, so surviving a
// power cut buys nothing, while an fsync on a busy disk put up to 188 ms on
// the change → file latency (test/bench/watch). ext4 still flushes a file
// renamed over another at the next commit (auto_da_alloc).
//
// When dest is a symbolic link, its target is replaced and the link kept.
// The temporary file is named ".BASE.pilot-RANDOM", so globs such as
// *.conf or a Traefik directory provider (which reads *.yml, *.yaml,
// *.toml) never pick it up. Ownership is not carried over:
// the new file belongs to pilot's user.
func Apply(dest string, content []byte, mode fs.FileMode) (changed bool, err error) {
	if mode == 0 {
		mode = 0o644
	}
	path := dest
	fi, err := os.Stat(dest) // follows symlinks
	switch {
	case err == nil:
		if !fi.Mode().IsRegular() {
			return false, fmt.Errorf("render: apply %s: not a regular file (%s)", dest, fi.Mode().Type())
		}
		if path, err = filepath.EvalSymlinks(dest); err != nil {
			return false, fmt.Errorf("render: apply %s: %w", dest, err)
		}
		if fi.Size() == int64(len(content)) {
			old, err := os.ReadFile(path)
			if err != nil {
				return false, fmt.Errorf("render: apply %s: %w", dest, err)
			}
			if bytes.Equal(old, content) {
				return false, nil
			}
		}
		mode = fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(dest)
		if _, derr := os.Stat(dir); derr != nil {
			return false, fmt.Errorf("render: apply %s: directory %s: %w", dest, dir, derr)
		}
	default:
		return false, fmt.Errorf("render: apply %s: %w", dest, err)
	}
	if err := replace(path, content, mode); err != nil {
		return false, fmt.Errorf("render: apply %s: %w", dest, err)
	}
	return true, nil
}

// replace writes content to a temporary file next to path and renames it
// over path.
func replace(path string, content []byte, mode fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".pilot-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(content); err != nil {
		return err
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
