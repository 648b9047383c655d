package render

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The real nginx accepts every nginx golden file as an upstream block: the
// renderer's output is checked with `nginx -t`, not only against itself.
func TestNGINXGoldenFilesLoadInRealNginx(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		msg := "the real-nginx test needs nginx (Debian nginx-light; test/install-deps.sh installs it)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED — " + msg)
	}
	goldens, _ := filepath.Glob("testdata/nginx-*.golden")
	if len(goldens) == 0 {
		t.Fatal("no nginx golden files")
	}
	for _, golden := range goldens {
		t.Run(filepath.Base(golden), func(t *testing.T) {
			dir := t.TempDir()
			upstream, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			name := upstreamName(t, string(upstream))
			conf := fmt.Sprintf(`pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
  access_log off;
  client_body_temp_path %[1]s;
  proxy_temp_path %[1]s;
  fastcgi_temp_path %[1]s;
  uwsgi_temp_path %[1]s;
  scgi_temp_path %[1]s;
  include %[1]s/upstream.conf;
  server {
    listen 127.0.0.1:1;
    location / { proxy_pass http://%[2]s; }
  }
}
`, dir, name)
			if err := os.WriteFile(filepath.Join(dir, "upstream.conf"), upstream, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "-t", "-p", dir, "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput()
			if err != nil {
				t.Fatalf("nginx -t rejected %s: %v\n%s\n%s", golden, err, out, upstream)
			}
		})
	}
}

func upstreamName(t *testing.T, conf string) string {
	t.Helper()
	for _, line := range strings.Split(conf, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "upstream "); ok {
			return strings.TrimSuffix(strings.TrimSpace(rest), " {")
		}
	}
	t.Fatalf("no upstream block in:\n%s", conf)
	return ""
}
