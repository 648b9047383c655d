package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every config under examples/ is valid as shipped, so the README's
// examples never rot. They are image configs: they are checked as
// `pilot validate --skip-host-checks` checks one on a CI host, since the
// files and directories they name are the image's, not this machine's.
func TestExampleConfigsValidate(t *testing.T) {
	t.Parallel()
	configs, _ := filepath.Glob("../../examples/*/*.yaml")
	var checked int
	for _, path := range configs {
		if filepath.Base(path) == "docker-compose.yml" || filepath.Base(path) == "traefik.yml" {
			continue
		}
		if _, err := loadConfig(path, nil, false); err != nil {
			t.Errorf("%s:\n%v", path, err)
		}
		checked++
	}
	if checked < 3 {
		t.Fatalf("checked %d example configs, want at least 3 (%v)", checked, configs)
	}
}

// The nginx front's nginx.conf, with the upstream placeholder it ships,
// loads in the real nginx.
func TestExampleNginxFrontLoads(t *testing.T) {
	t.Parallel()
	bin := requireNginx(t)
	dir := t.TempDir()
	for _, name := range []string{"nginx.conf", "upstream.conf"} {
		b, err := os.ReadFile(filepath.Join("../../examples/nginx-front", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(bin, "-t", "-e", "stderr", "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

// The README's example config (the yaml block of its "## Config" section)
// validates as written, host checks aside: it names /app, the user node
// and template files that a CI host does not have.
func TestReadmeConfigValidates(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Config\n")
	if !ok {
		t.Fatal(`README.md has no "## Config" section`)
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	block, _, closed := strings.Cut(block, "\n```")
	if !ok || !closed {
		t.Fatal(`the "## Config" section has no yaml block`)
	}
	path := filepath.Join(t.TempDir(), "pilot.yaml")
	if err := os.WriteFile(path, []byte(block+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// loadConfig with checkHost false is `pilot validate --skip-host-checks`.
	if _, err := loadConfig(path, nil, false); err != nil {
		t.Errorf("the README's example config:\n%v", err)
	}
}
