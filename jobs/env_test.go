package jobs

import (
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestEnvOverlay(t *testing.T) {
	env := []string{"PATH=/bin", "LEVEL=info", "APP=job"}
	if got := (*EnvOverlay)(nil).apply(env, nil); !slices.Equal(got, env) {
		t.Errorf("nil overlay: %q", got)
	}
	o := NewEnvOverlay()
	if got := o.apply(env, nil); !slices.Equal(got, env) {
		t.Errorf("empty overlay: %q", got)
	}
	o.Set(map[string]string{"LEVEL": "warn", "APP": "putenv", "NEW": "1"})
	o.Set(map[string]string{"LEVEL": "debug"}) // a later Set wins per key
	got := o.apply(env, []string{"APP"})
	if want := []string{"PATH=/bin", "APP=job", "LEVEL=debug", "NEW=1"}; !slices.Equal(got, want) {
		t.Errorf("applied: %q, want %q", got, want)
	}
	if want := []string{"PATH=/bin", "LEVEL=info", "APP=job"}; !slices.Equal(env, want) {
		t.Errorf("apply changed its input: %q", env)
	}
	vars := o.Vars()
	vars["LEVEL"] = "changed by the caller"
	if o.Vars()["LEVEL"] != "debug" || len(o.Vars()) != 3 {
		t.Errorf("Vars is not a copy: %v", o.Vars())
	}
}

// putenv reaches the runs and hooks started after it, never a run already
// started, and never a key the job's own env sets.
func TestEnvOverlayReachesLaterRuns(t *testing.T) {
	h := newHarness(t)
	overlay := NewEnvOverlay()
	h.deps.Env = overlay
	spec := shellSpec("app", `trap 'echo "usr1 X=$X"; exit 0' USR1; echo "start X=$X OWN=$OWN"; while :; do sleep 0.05; done`)
	spec.Env = append(spec.Env, "X=old", "OWN=job")
	spec.OwnEnv = []string{"OWN"}
	spec.Policy.Restart = RestartAlways
	spec.PostStop = &Hook{Argv: []string{"/bin/sh", "-c", `echo "hook X=$X OWN=$OWN"`}, Timeout: 5 * time.Second}
	j := New(spec, h.deps)
	wg := runAll(j)
	h.waitOutput(t, "app | start X=old OWN=job\n")

	overlay.Set(map[string]string{"X": "new", "OWN": "putenv"})
	j.Forward(syscall.SIGUSR1)
	h.waitOutput(t, "app | usr1 X=old\n")
	h.waitOutput(t, "app | start X=new OWN=job\n")
	j.Stop(syscall.SIGTERM)
	wg.Wait()
	j.RunPostStop(t.Context())
	h.waitOutput(t, "app | hook X=new OWN=job\n")
	if strings.Contains(h.out.String(), "putenv") {
		t.Errorf("the overlay overrode the job's own key:\n%s", h.out.String())
	}
	if slices.Contains(j.Spec().Env, "X=new") {
		t.Error("the overlay changed the spec's Env")
	}
}
