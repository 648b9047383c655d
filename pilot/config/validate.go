package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Validate checks the config as written (defaults not yet filled in) and
// returns every problem it finds, joined one per line, each a *FieldError
// that names its path: "jobs[1].restart.max: must be ≥ 0". It reads c only.
func (c *Config) Validate() error {
	if c == nil {
		return errors.New("no config")
	}
	var p problems
	oneOf(&p, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(&p, "log.format", c.Log.Format, "text", "json")
	nonNegative(&p, "stopTimeout", c.StopTimeout)
	c.Consul.validate(&p)
	c.validateJobs(&p)
	c.validateWatches(&p)
	c.validateTelemetry(&p)
	return p.err()
}

func (c *Config) validateJobs(p *problems) {
	if len(c.Jobs) == 0 {
		p.add("jobs", "at least one job is required")
		return
	}
	firstNamed := map[string]int{} // job name → index of the first job with it
	mainJob := -1
	topStopTimeout := c.effectiveStopTimeout()
	for i := range c.Jobs {
		job := &c.Jobs[i]
		path := fmt.Sprintf("jobs[%d]", i)
		if first, dup := firstNamed[job.Name]; dup && job.Name != "" {
			p.add(path+".name", "duplicate %s (also jobs[%d])", quote(job.Name), first)
		} else if job.Name != "" {
			firstNamed[job.Name] = i
		}
		if job.Main && mainJob >= 0 {
			p.add(path+".main", "only one job can be main (jobs[%d] already is)", mainJob)
		} else if job.Main {
			mainJob = i
		}
		job.validate(p, path, topStopTimeout)
		job.Health.validate(p, path+".health")
		job.Service.validate(p, path+".service", job, c.Consul)
	}
	validateDependencies(p, c.Jobs, firstNamed)
}

func (j *Job) validate(p *problems, path string, topStopTimeout time.Duration) {
	validateJobName(p, path+".name", j.Name)
	validateCommand(p, path, j.Exec, j.Shell)
	noNUL(p, path+".dir", j.Dir)
	if !validUser(j.User) {
		p.add(path+".user", `%s is not a user name, uid, "user:group" or "uid:gid"`, quote(j.User))
	}
	validateEnv(p, path+".env", j.Env)
	j.validateSchedule(p, path)
	j.Restart.validate(p, path+".restart")
	j.validateStop(p, path, topStopTimeout)
	validateHook(p, path+".preStop", j.PreStop)
	validateHook(p, path+".postStop", j.PostStop)
	oneOf(p, path+".output", j.Output, "raw", "prefixed", "json")
	validateForwardSignals(p, path+".forwardSignals", j.ForwardSignals)
	if j.MaxMemory != "" {
		if _, err := ParseBytes(j.MaxMemory); err != nil {
			p.add(path+".maxMemory", "%v", err)
		}
	}
}

func validateJobName(p *problems, path, name string) {
	if name == "" {
		p.add(path, "required")
		return
	}
	valid := isAlphanumeric(name[0])
	for i := 1; i < len(name); i++ {
		valid = valid && (isAlphanumeric(name[i]) || strings.IndexByte("_.-", name[i]) >= 0)
	}
	if !valid {
		p.add(path, "%s must start with a letter or digit and hold only letters, digits, '_', '.' and '-'", quote(name))
	}
}

// validateCommand checks the exec-or-shell pair shared by jobs and hooks.
func validateCommand(p *problems, path string, exec []string, shell string) {
	switch {
	case exec != nil && shell != "":
		p.add(path, "exec and shell are mutually exclusive; set one")
	case exec == nil && shell == "":
		p.add(path, "one of exec or shell is required")
	case exec != nil && len(exec) == 0:
		p.add(path+".exec", "must not be empty")
	case exec != nil && exec[0] == "":
		p.add(path+".exec[0]", "the program must not be empty")
	}
	for i, arg := range exec {
		noNUL(p, fmt.Sprintf("%s.exec[%d]", path, i), arg)
	}
	noNUL(p, path+".shell", shell)
}

// validUser accepts "", a user name, a uid, or user:group with a name or a
// number on each side. Whether the user exists is checked where the job is
// built, on the machine that runs it.
func validUser(s string) bool {
	if s == "" {
		return true
	}
	user, group, hasGroup := strings.Cut(s, ":")
	return validUserPart(user) && (!hasGroup || validUserPart(group))
}

func validUserPart(s string) bool {
	if _, err := strconv.ParseUint(s, 10, 32); err == nil {
		return true
	}
	// The portable user name, plus the trailing $ of machine accounts.
	s = strings.TrimSuffix(s, "$")
	if s == "" || !(isLetter(s[0]) || s[0] == '_') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isAlphanumeric(s[i]) && strings.IndexByte("_.-", s[i]) < 0 {
			return false
		}
	}
	return true
}

func validateEnv(p *problems, path string, env map[string]string) {
	for _, key := range slices.Sorted(maps.Keys(env)) {
		switch {
		case key == "":
			p.add(path, "a variable name must not be empty")
		case strings.ContainsAny(key, "=\x00"):
			p.add(path, "variable name %s must not contain '=' or NUL", quote(key))
		}
		noNUL(p, keyPath(path, key), env[key])
	}
}

func (j *Job) validateSchedule(p *problems, path string) {
	nonNegative(p, path+".timeout", j.Timeout)
	switch {
	case j.Every < 0:
		p.add(path+".every", "must be ≥ 0")
	case j.Every > 0 && j.Every < MinEvery:
		p.add(path+".every", "must be ≥ %s", formatDuration(MinEvery))
	}
	if j.Every <= 0 {
		return
	}
	if j.Main {
		p.add(path+".every", "a main job cannot be periodic")
	}
	if policy := j.Restart.Policy; policy != "" && policy != "never" {
		p.add(path+".restart.policy", "a periodic job cannot restart (its next run is the retry); use never or leave it out")
	}
}

func (r *Restart) validate(p *problems, path string) {
	oneOf(p, path+".policy", r.Policy, "never", "on-failure", "always")
	if r.Max != nil && *r.Max < 0 {
		p.add(path+".max", "must be ≥ 0")
	}
	b := &r.Backoff
	nonNegative(p, path+".backoff.initial", b.Initial)
	nonNegative(p, path+".backoff.max", b.Max)
	nonNegative(p, path+".backoff.resetAfter", b.ResetAfter)
	if b.Max >= 0 && b.Initial > b.effectiveMax() {
		if b.Max == 0 {
			p.add(path+".backoff.initial", "%s exceeds the default backoff.max %s", formatDuration(b.Initial), formatDuration(DefaultBackoffMax))
		} else {
			p.add(path+".backoff.initial", "%s exceeds backoff.max %s", formatDuration(b.Initial), formatDuration(b.Max))
		}
	}
}

func (j *Job) validateStop(p *problems, path string, topStopTimeout time.Duration) {
	if j.StopSignal != "" {
		sig, err := ParseSignal(j.StopSignal)
		switch {
		case err != nil:
			p.add(path+".stopSignal", "%v", err)
		case sig == unix.SIGKILL || sig == unix.SIGSTOP:
			p.add(path+".stopSignal", "%s cannot be a stop signal: a job cannot catch it to stop cleanly (pilot sends SIGKILL itself once stopTimeout passes)", unix.SignalName(sig))
		}
	}
	nonNegative(p, path+".stopTimeout", j.StopTimeout)
	// A negative top-level stopTimeout is reported on its own; comparing
	// against it would only echo that error on every job.
	if topStopTimeout > 0 && j.StopTimeout > topStopTimeout {
		p.add(path+".stopTimeout", "%s exceeds the top-level stopTimeout %s", formatDuration(j.StopTimeout), formatDuration(topStopTimeout))
	}
}

func validateHook(p *problems, path string, h *Hook) {
	if h == nil {
		return
	}
	validateCommand(p, path, h.Exec, h.Shell)
	nonNegative(p, path+".timeout", h.Timeout)
}

func validateForwardSignals(p *problems, path string, names []string) {
	firstAt := map[syscall.Signal]int{}
	for i, name := range names {
		at := fmt.Sprintf("%s[%d]", path, i)
		sig, err := ParseSignal(name)
		if err != nil {
			p.add(at, "%v", err)
			continue
		}
		if !forwardable(sig) {
			p.add(at, "%s cannot be forwarded (forwardable: %s)", unix.SignalName(sig), forwardableSignals)
			continue
		}
		if first, dup := firstAt[sig]; dup {
			p.add(at, "duplicate %s (also forwardSignals[%d])", unix.SignalName(sig), first)
			continue
		}
		firstAt[sig] = i
	}
}

func oneOf(p *problems, path, value string, allowed ...string) {
	if value != "" && !slices.Contains(allowed, value) {
		p.add(path, "%s must be one of %s", quote(value), strings.Join(allowed, ", "))
	}
}

func nonNegative(p *problems, path string, d time.Duration) {
	if d < 0 {
		p.add(path, "must be ≥ 0")
	}
}

// noNUL refuses a NUL byte in a string that ends up in execve or chdir,
// where it would fail only when the job starts.
func noNUL(p *problems, path, s string) {
	if strings.IndexByte(s, 0) >= 0 {
		p.add(path, "must not contain a NUL byte")
	}
}

// formatDuration spells d the way a config writes it: 1m rather than 1m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-len("0s")] // 1m0s → 1m, 1h0m0s → 1h0m
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-len("0m")] // 1h0m → 1h
	}
	return s
}

func isLetter(c byte) bool       { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isAlphanumeric(c byte) bool { return isLetter(c) || '0' <= c && c <= '9' }
