package pilot

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepilot/pilot/jobs"
	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/telemetry/custom"
)

// buildCustomMetrics registers the config's `metrics:` on reg. It returns
// nil (and no error) when the config declares none and runs no sensor job:
// then nothing has anything to set. An error is a *ConfigError (a name
// that collides with a collector already on reg, say).
func buildCustomMetrics(cfg config.Config, reg prometheus.Registerer) (*custom.Metrics, error) {
	sensors := false
	for _, j := range cfg.Jobs {
		sensors = sensors || j.Sensor
	}
	if len(cfg.Metrics) == 0 && !sensors {
		return nil, nil
	}
	defs := make([]custom.Def, len(cfg.Metrics))
	for i, m := range cfg.Metrics {
		defs[i] = custom.Def{Name: m.Name, Kind: custom.Kind(m.Type), Help: m.Help, Labels: m.Labels, Buckets: m.Buckets}
	}
	metrics, err := custom.New(defs, reg)
	if err != nil {
		return nil, &ConfigError{err}
	}
	return metrics, nil
}

// attachSensors makes each sensor job's stdout feed metrics, line by line
// (its stderr keeps the job's output mode). specs are buildSpecs's, for the
// same config. With no metrics (nil), sensor jobs are left as they are;
// validation makes that impossible for a valid config.
func attachSensors(cfg config.Config, specs []jobs.Spec, metrics *custom.Metrics, log *slog.Logger) {
	if metrics == nil {
		return
	}
	sensor := map[string]bool{}
	for _, j := range cfg.Jobs {
		sensor[j.Name] = j.Sensor
	}
	for i := range specs {
		if sensor[specs[i].Name] {
			specs[i].StdoutLines = metrics.Sensor(specs[i].Name, log)
		}
	}
}
