package pilot

import (
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/jobs/output"
	"github.com/nodepilot/pilot/test/toolbin"
)

func TestStopOrderDependantsFirst(t *testing.T) {
	bus := jobs.NewBus()
	deps := jobs.Deps{Log: slog.New(slog.DiscardHandler), Bus: bus}
	mk := func(name string, after ...string) *jobs.Job {
		spec := jobs.Spec{Name: name}
		for _, a := range after {
			spec.After = append(spec.After, jobs.Dependency{Job: a, State: jobs.Running})
		}
		return jobs.New(spec, deps)
	}
	// proxy → app → migrate; metrics → app; cron stands alone.
	all := []*jobs.Job{mk("migrate"), mk("app", "migrate"), mk("proxy", "app"), mk("metrics", "app"), mk("cron")}
	var got [][]string
	for _, level := range stopOrder(all) {
		var names []string
		for _, j := range level {
			names = append(names, j.Name())
		}
		got = append(got, names)
	}
	want := [][]string{{"proxy", "metrics", "cron"}, {"app"}, {"migrate"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("stop order %v, want %v", got, want)
	}
}

// Issue 10 item 3: a main job that cannot start ends pilot while a side job
// is starting; nothing may start once "shutdown: begin" is logged. The race
// is narrow, so it runs many times.
func TestNothingStartsAfterShutdownBegins(t *testing.T) {
	const rounds = 50
	for round := range rounds {
		var out toolbin.LockedBuffer
		log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
		// The reaper's gate is closed by each shutdown: one per round.
		reaper := jobs.NewReaper(log)
		bus := jobs.NewBus()
		deps := jobs.Deps{Log: log, Reaper: reaper, Bus: bus,
			Stdout: output.NewSink(os.Stdout), Stderr: output.NewSink(os.Stderr)}
		main := jobs.New(jobs.Spec{Name: "app", Main: true, Argv: []string{"nosuchcmd"}, Env: os.Environ(), Output: output.Raw,
			Policy: jobs.Policy{StopTimeout: time.Second}}, deps)
		side := jobs.New(jobs.Spec{Name: "side", Argv: []string{"sleep", "30"}, Env: os.Environ(), Output: output.Raw,
			Policy: jobs.Policy{StopTimeout: time.Second}}, deps)
		s := &supervisor{log: log, jobs: []*jobs.Job{main, side}, main: main, bus: bus, reaper: reaper,
			stopTimeout: 5 * time.Second, signals: make(chan os.Signal)}
		if code := s.run(t.Context()); code != 127 {
			t.Fatalf("round %d: exit %d, want 127", round, code)
		}
		begun := false
		for line := range strings.Lines(out.String()) {
			switch {
			case strings.Contains(line, "msg=\"shutdown: begin\""):
				begun = true
				if !strings.Contains(line, `reason="main job app failed (exit code 127)"`) {
					t.Errorf("reason: %s", line)
				}
			case begun && strings.Contains(line, "msg=started"):
				t.Fatalf("round %d: a job started after shutdown began:\n%s", round, out.String())
			}
		}
	}
}
