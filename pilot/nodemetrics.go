package pilot

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/telemetry/nodejs"
)

// wantsNodeMetrics reports whether a job asks for Node runtime metrics.
func wantsNodeMetrics(cfg config.Config) bool {
	for _, j := range cfg.Jobs {
		if j.Node != nil && j.Node.Metrics {
			return true
		}
	}
	return false
}

// setupNodeAgents hands pilot's Node agent to the jobs with node.metrics
// (their environment gains NODE_OPTIONS=--require …) and returns the
// agents, which accept only the process pilot started for each job: pidOf
// reads it from the jobs once they exist. When the agent cannot be
// installed, New has logged why and the jobs start without it.
func setupNodeAgents(cfg config.Config, specs []jobs.Spec, dir string, reg prometheus.Registerer, log *slog.Logger) (*nodejs.Agents, func([]*jobs.Job), error) {
	byName := map[string]*jobs.Job{}
	pidOf := func(job string) int {
		if j := byName[job]; j != nil {
			return j.Status().Pid
		}
		return 0
	}
	agents, err := nodejs.New(dir, reg, log.With("component", "nodejs"), pidOf)
	if err != nil {
		return nil, nil, err
	}
	for i, jc := range cfg.Jobs {
		if jc.Node != nil && jc.Node.Metrics {
			specs[i].Env = agents.Env(jc.Name, specs[i].Env)
		}
	}
	// Called before the run group starts, so the agents' goroutines see
	// the map complete.
	setJobs := func(js []*jobs.Job) {
		for _, j := range js {
			byName[j.Name()] = j
		}
	}
	return agents, setJobs, nil
}
