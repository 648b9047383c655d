package watches

import (
	"sync/atomic"
	"time"

	"github.com/nodepilot/pilot/pilot/config"
)

// firstRenderWait bounds how long a job a watch reloads waits for the
// watch's first render before it starts anyway (Consul down at boot: the
// proxy still starts, on the files it has).
const firstRenderWait = 5 * time.Second

// StartGate holds the first start of a job that watches reload until every
// one of those watches has rendered its first set, or waited
// firstRenderWait without one. A job signalled while it starts can die of
// it (nginx exits on SIGHUP until it has installed its handlers, some 30 ms
// into its start), so such a job starts on the rendered files and is
// signalled only after. A StartGate is shared by the watches that reload
// one job and is safe for concurrent use.
type StartGate struct {
	remaining atomic.Int32
	open      chan struct{}
}

func newStartGate() *StartGate { return &StartGate{open: make(chan struct{})} }

// done counts one watch's share; the last one opens the gate.
func (g *StartGate) done() {
	if g.remaining.Add(-1) == 0 {
		close(g.open)
	}
}

// NewStartGates gives every job named by a watch's reload.job a start
// gate, unless startingJobs says the job is not about to start (it already
// runs: a gate would hold nothing); a nil startingJobs means every job is.
// It returns per job the channel closed when its gate opens (for
// jobs.Spec.StartGate), and per watch, in the order of ws, the gate its
// first render opens (nil for none; Options.Gate).
func NewStartGates(ws []config.Watch, startingJobs func(job string) bool) (perJob map[string]<-chan struct{}, perWatch []*StartGate) {
	gates := map[string]*StartGate{}
	perJob = map[string]<-chan struct{}{}
	perWatch = make([]*StartGate, len(ws))
	for i, w := range ws {
		r := w.OnChange.Reload
		if r == nil || r.Job == "" || startingJobs != nil && !startingJobs(r.Job) {
			continue
		}
		g := gates[r.Job]
		if g == nil {
			g = newStartGate()
			gates[r.Job] = g
			perJob[r.Job] = g.open
		}
		g.remaining.Add(1)
		perWatch[i] = g
	}
	return perJob, perWatch
}
