package pilot

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/nodepilot/pilot/jobs"
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
