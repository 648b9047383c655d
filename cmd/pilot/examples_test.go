package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Every config under examples/ is valid as shipped, so the README's
// examples never rot.
func TestExampleConfigsValidate(t *testing.T) {
	t.Parallel()
	configs, _ := filepath.Glob("../../examples/*/*.yaml")
	var checked int
	for _, path := range configs {
		if filepath.Base(path) == "docker-compose.yml" || filepath.Base(path) == "traefik.yml" {
			continue
		}
		p := startPilot(t, pilotOpts{}, "validate", "--config", path)
		if code := p.wait(5 * time.Second); code != 0 {
			t.Errorf("%s: exit %d:\n%s", path, code, p.errLog.String())
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
