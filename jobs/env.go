package jobs

import (
	"maps"
	"slices"
	"strings"
	"sync"
)

// EnvOverlay is the environment set at run time (putenv): applied over the
// inherited environment of every run (and hook) started after the change,
// never over the keys a job's own env: sets (Spec.OwnEnv). It changes
// neither pilot's own environment (no os.Setenv) nor any Spec's Env, so
// that a reload comparing specs sees no job changed by a putenv. Exec
// health checks do not get it: their caller builds their environment.
//
// It is safe for concurrent use.
type EnvOverlay struct {
	mu   sync.RWMutex
	vars map[string]string
}

func NewEnvOverlay() *EnvOverlay { return &EnvOverlay{vars: map[string]string{}} }

// Set merges vars into the overlay; a later Set wins per key. The caller
// checks the names (not empty, no '=').
func (o *EnvOverlay) Set(vars map[string]string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	maps.Copy(o.vars, vars)
}

// Vars returns a copy of the overlay, for status.
func (o *EnvOverlay) Vars() map[string]string {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return maps.Clone(o.vars)
}

// apply returns env with the overlay set over it, in a stable order, but
// for the keys in own; env itself is never changed. A nil overlay is
// empty.
func (o *EnvOverlay) apply(env, own []string) []string {
	if o == nil {
		return env
	}
	o.mu.RLock()
	set := make(map[string]string, len(o.vars))
	for k, v := range o.vars {
		if !slices.Contains(own, k) {
			set[k] = v
		}
	}
	o.mu.RUnlock()
	if len(set) == 0 {
		return env
	}
	return MergeEnv(env, set)
}

// MergeEnv returns env with vars set over it: env's other entries in
// their order, then vars sorted by name, so the result is stable. env is
// never changed. The config's env: and putenv's overlay both set
// variables this way.
func MergeEnv(env []string, vars map[string]string) []string {
	out := make([]string, 0, len(env)+len(vars))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if _, over := vars[k]; !over {
			out = append(out, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		out = append(out, k+"="+vars[k])
	}
	return out
}
