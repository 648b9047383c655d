package promproc

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A real Prometheus scrapes a static target and answers a query about it;
// Stop ends the process.
func TestScrapeAndQuery(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, "# TYPE promproc_test_value gauge\npromproc_test_value{kind=\"a\"} 42\n")
	}))
	defer ts.Close()
	host := strings.TrimPrefix(ts.URL, "http://")
	p := StartT(t, Options{Config: fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: static
    static_configs: [{targets: [%q]}]
`, host)})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []Sample
	for {
		var err error
		got, err = p.Query(ctx, `promproc_test_value{job="static"}`)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no sample within 30s; targets: %v", targets(t, p))
		case <-time.After(100 * time.Millisecond): // poll interval, bounded by ctx
		}
	}
	if got[0].Value != 42 || got[0].Metric["kind"] != "a" || got[0].Metric["instance"] != host {
		t.Errorf("sample %+v", got[0])
	}
	if time.Since(got[0].Time) > time.Minute {
		t.Errorf("sample time %v", got[0].Time)
	}
	tg, err := p.Targets(ctx)
	if err != nil || len(tg) != 1 || tg[0].Health != "up" || tg[0].ScrapePool != "static" {
		t.Errorf("targets %+v, %v", tg, err)
	}
	scalar, err := p.Query(ctx, `1 + 1`)
	if err != nil || len(scalar) != 1 || scalar[0].Value != 2 {
		t.Errorf("scalar %+v, %v", scalar, err)
	}
	if _, err := p.Query(ctx, `up{`); err == nil || !strings.Contains(err.Error(), "parse error") {
		t.Errorf("a bad expression: %v", err)
	}

	pid, dir := p.Pid(), p.Dir()
	p.Stop()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("prometheus %d still alive after Stop", pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dir %s left behind: %v", dir, err)
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Errorf("%s still listening", p.Addr())
	}
}

func TestStartRejectsABadConfig(t *testing.T) {
	_, err := PrometheusPath()
	Require(t, err)
	_, err = Start(Options{Config: "scrape_configs: [{job_name: x, nonsense: 1}]\n"})
	if err == nil || !strings.Contains(err.Error(), "nonsense") {
		t.Fatalf("got %v", err)
	}
}

func targets(t *testing.T, p *Server) string {
	tg, err := p.Targets(context.Background())
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%+v", tg)
}
