package config

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/nodepilot/pilot/telemetry/custom"
)

// Names are checked by Prometheus's own classic rules (model.
// LegacyValidation: metric names may hold ':', label names not), which
// every scraper accepts; label names starting with "__" are reserved.

// reservedPrefixes are the metric name prefixes of pilot's own metrics and
// of the Go runtime and process collectors it serves beside them.
var reservedPrefixes = []string{"pilot_", "go_", "process_"}

// reservedLabels are labels pilot itself, or Prometheus, sets.
var reservedLabels = []string{"job", "instance", "le", "quantile"}

func (c *Config) validateTelemetry(p *problems) {
	if t := c.Telemetry; t != nil {
		if t.Listen == "" {
			p.required("telemetry.listen", "required (host:port, e.g. \":9090\")")
		} else if _, port, err := net.SplitHostPort(t.Listen); err != nil {
			p.add("telemetry.listen", "%s is not host:port", quote(t.Listen))
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			p.add("telemetry.listen", "port %s: want 1-65535", quote(port))
		}
		if t.Register && c.Consul == nil {
			p.addAbout([]string{"consul"}, "telemetry.register", "needs the top-level consul block")
		}
	}
	needsTelemetry := func(path, what string) {
		if c.Telemetry == nil {
			p.addAbout([]string{"telemetry"}, path, "%s needs the top-level telemetry block (telemetry.listen)", what)
		}
	}
	seen := map[string]int{}
	for i, m := range c.Metrics {
		path := fmt.Sprintf("metrics[%d]", i)
		if i == 0 {
			needsTelemetry("metrics", "a custom metric")
		}
		switch {
		case m.Name == "":
			p.required(path+".name", "required")
		case !model.LegacyValidation.IsValidMetricName(m.Name):
			p.add(path+".name", "%s is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)", quote(m.Name))
		default:
			for _, prefix := range reservedPrefixes {
				if strings.HasPrefix(m.Name, prefix) {
					p.add(path+".name", "%s: the %s prefix is pilot's own (its runtime and process metrics)", quote(m.Name), prefix)
				}
			}
		}
		if first, dup := seen[m.Name]; dup && m.Name != "" {
			p.add(path+".name", "duplicate %s (also metrics[%d])", quote(m.Name), first)
		} else {
			seen[m.Name] = i
		}
		if m.Type == "" {
			p.required(path+".type", "required (counter, gauge or histogram)")
		}
		if m.Type == custom.Counter && m.Name != "" && !strings.HasSuffix(m.Name, "_total") {
			p.add(path+".name", "a counter's name ends in _total (Prometheus naming): %s", quote(m.Name+"_total"))
		}
		labels := map[string]bool{}
		for k, l := range m.Labels {
			lp := fmt.Sprintf("%s.labels[%d]", path, k)
			switch {
			case !model.LegacyValidation.IsValidLabelName(l) || strings.HasPrefix(l, "__"):
				p.add(lp, "%s is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)", quote(l))
			case slices.Contains(reservedLabels, l):
				p.add(lp, "%s is reserved (%s)", quote(l), strings.Join(reservedLabels, ", "))
			case labels[l]:
				p.add(lp, "duplicate %s", quote(l))
			}
			labels[l] = true
		}
		if len(m.Buckets) > 0 && m.Type != custom.Histogram && m.Type != "" {
			p.add(path+".buckets", "only a histogram has buckets")
		}
		for k := 1; k < len(m.Buckets); k++ {
			if m.Buckets[k] <= m.Buckets[k-1] {
				p.add(fmt.Sprintf("%s.buckets[%d]", path, k), "%v: buckets must increase", m.Buckets[k])
				break
			}
		}
	}
	for i, j := range c.Jobs {
		path := fmt.Sprintf("jobs[%d]", i)
		if j.Node != nil && j.Node.Metrics {
			needsTelemetry(path+".node.metrics", "Node metrics")
		}
		if j.Sensor {
			needsTelemetry(path+".sensor", "a sensor job")
			if len(c.Metrics) == 0 {
				p.addAbout([]string{"metrics"}, path+".sensor", "declare the metrics it sets under the top-level metrics")
			}
			if j.Main {
				p.add(path+".sensor", "the main job cannot be a sensor")
			}
		}
	}
}
