package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodepilot/pilot/jobs"
)

// Validate checks a config as written (defaults not yet filled in) and
// returns every problem it finds, joined one per line, each a *FieldError
// that names its path: "jobs[1].restart.max: must be ≥ 0". It reads c
// only. Load and Parse validate what they decode; Validate is for a Config
// built in code, where a zero value always means "not set".
func (c *Config) Validate() error {
	if c == nil {
		return errors.New("no config")
	}
	var p problems
	c.validate(&p)
	sortProblems(p.list)
	return joinProblems(p.list)
}

func (c *Config) validate(p *problems) {
	if c.Log.Level != "" {
		if _, err := ParseLogLevel(c.Log.Level); err != nil {
			p.add("log.level", "%v", err)
		}
	}
	if c.Log.Format != "" {
		if _, err := ParseLogFormat(c.Log.Format); err != nil {
			p.add("log.format", "%v", err)
		}
	}
	nonNegative(p, "stopTimeout", c.StopTimeout)
	notExplicitZero(p, "stopTimeout", c.StopTimeout, "the default "+formatDuration(DefaultStopTimeout))
	c.Consul.validate(p)
	c.validateJobs(p)
	c.validateWatches(p)
	c.validateTelemetry(p)
	c.validateCluster(p)
	c.validateControl(p)
	c.validateDocker(p)
}

// validateDocker checks docker.host: a unix socket path or tcp://host:port,
// the two forms the Engine API client and pilot docker-proxy speak.
func (c *Config) validateDocker(p *problems) {
	if c.Docker == nil || c.Docker.Host == "" {
		return
	}
	h := c.Docker.Host
	switch {
	case strings.HasPrefix(h, "unix://"):
		if !strings.HasPrefix(strings.TrimPrefix(h, "unix://"), "/") {
			p.add("docker.host", "%s: a unix socket needs an absolute path (unix:///var/run/docker.sock)", quote(h))
		}
	case strings.HasPrefix(h, "tcp://"):
		if _, port, err := net.SplitHostPort(strings.TrimPrefix(h, "tcp://")); err != nil || port == "" {
			p.add("docker.host", "%s: want tcp://HOST:PORT", quote(h))
		}
	default:
		p.add("docker.host", "%s: want unix:///PATH or tcp://HOST:PORT", quote(h))
	}
}

// maxSocketPath is the longest path a unix socket can be bound at
// (sun_path, less its terminating NUL).
const maxSocketPath = 107

func (c *Config) validateControl(p *problems) {
	if c.Control == nil || c.Control.Socket == nil || *c.Control.Socket == "" {
		return
	}
	switch path := *c.Control.Socket; {
	case !strings.HasPrefix(path, "/"):
		p.add("control.socket", "%s is not an absolute path (\"\" turns the socket off)", quote(path))
	case len(path) > maxSocketPath:
		p.add("control.socket", "%s is %d bytes long: a unix socket path is at most %d", quote(path), len(path), maxSocketPath)
	}
}

func (c *Config) validateJobs(p *problems) {
	if len(c.Jobs) == 0 {
		p.required("jobs", "at least one job is required")
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
	runOnChange := map[string]bool{}
	for _, w := range c.Watches {
		runOnChange[w.OnChange.Run] = true
	}
	validateDependencies(p, c.Jobs, firstNamed, runOnChange)
}

// jobNamesUncertain reports whether a job's name could not be decoded, in
// which case a reference to an unknown job may well name that job, and
// saying so would be noise.
func (p *problems) jobNamesUncertain(jobCount int) bool {
	if p.isUndecoded("jobs") {
		return true
	}
	for i := range jobCount {
		if p.isUndecoded(fmt.Sprintf("jobs[%d].name", i)) {
			return true
		}
	}
	return false
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
	validateForwardSignals(p, path+".forwardSignals", j.ForwardSignals)
}

func validateJobName(p *problems, path, name string) {
	if name == "" {
		p.required(path, "required")
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
		p.addAbout([]string{path + ".exec", path + ".shell"}, path, "one of exec or shell is required")
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
// number on each side. Whether the user exists is a question for the
// machine that runs the job (pilot's host checks).
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
	notExplicitZero(p, path+".timeout", j.Timeout, "no limit (a periodic job's limit is its period)")
	switch {
	case j.Every < 0:
		p.add(path+".every", "must be ≥ %s", formatDuration(MinEvery))
	case j.Every == 0 && p.explicit(path+".every"):
		p.add(path+".every", "must be ≥ %s (leave it out for a job that is not periodic)", formatDuration(MinEvery))
	case j.Every > 0 && j.Every < MinEvery:
		p.add(path+".every", "must be ≥ %s", formatDuration(MinEvery))
	}
	if j.Every <= 0 {
		return
	}
	if j.Main {
		p.add(path+".every", "a main job cannot be periodic")
	}
	if j.Restart.Policy != jobs.RestartNever {
		p.add(path+".restart.policy", "a periodic job cannot restart (its next run is the retry); use never or leave it out")
	}
}

func (r *Restart) validate(p *problems, path string) {
	if r.Max != nil && *r.Max < 0 {
		p.add(path+".max", "must be ≥ 0")
	}
	b := &r.Backoff
	nonNegative(p, path+".backoff.initial", b.Initial)
	notExplicitZero(p, path+".backoff.initial", b.Initial, "the default "+formatDuration(DefaultBackoffInitial))
	nonNegative(p, path+".backoff.max", b.Max)
	notExplicitZero(p, path+".backoff.max", b.Max, "the default "+formatDuration(DefaultBackoffMax))
	// The delay doubles up to max: a bound keeps the arithmetic sound.
	if b.Max > MaxBackoff {
		p.add(path+".backoff.max", "%s exceeds %s", formatDuration(b.Max), formatDuration(MaxBackoff))
	}
	nonNegative(p, path+".backoff.resetAfter", b.ResetAfter)
	notExplicitZero(p, path+".backoff.resetAfter", b.ResetAfter, "the default "+formatDuration(DefaultBackoffResetAfter))
	if b.Max >= 0 && b.Initial > b.effectiveMax() {
		if b.Max == 0 {
			p.add(path+".backoff.initial", "%s exceeds the default backoff.max %s", formatDuration(b.Initial), formatDuration(DefaultBackoffMax))
		} else {
			p.add(path+".backoff.initial", "%s exceeds backoff.max %s", formatDuration(b.Initial), formatDuration(b.Max))
		}
	}
}

func (j *Job) validateStop(p *problems, path string, topStopTimeout time.Duration) {
	if sig := syscall.Signal(j.StopSignal); sig == unix.SIGKILL || sig == unix.SIGSTOP {
		p.add(path+".stopSignal", "%s cannot be a stop signal: a job cannot catch it to stop cleanly (pilot sends SIGKILL itself once stopTimeout passes)", j.StopSignal)
	}
	nonNegative(p, path+".stopTimeout", j.StopTimeout)
	notExplicitZero(p, path+".stopTimeout", j.StopTimeout,
		fmt.Sprintf("the default %s, or the top-level stopTimeout if shorter", formatDuration(DefaultJobStopTimeout)))
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
	notExplicitZero(p, path+".timeout", h.Timeout, "the default "+formatDuration(DefaultHookTimeout))
}

func validateForwardSignals(p *problems, path string, signals []Signal) {
	firstAt := map[Signal]int{}
	for i, sig := range signals {
		at := fmt.Sprintf("%s[%d]", path, i)
		if sig == 0 {
			continue // not decoded, and reported so
		}
		if !slices.Contains(Forwardable, syscall.Signal(sig)) {
			p.add(at, "%s cannot be forwarded (forwardable: %s)", sig, forwardableSignals())
			continue
		}
		if first, dup := firstAt[sig]; dup {
			p.add(at, "duplicate %s (also forwardSignals[%d])", sig, first)
			continue
		}
		firstAt[sig] = i
	}
}

func nonNegative(p *problems, path string, d time.Duration) {
	if d < 0 {
		p.add(path, "must be ≥ 0")
	}
}

// notExplicitZero refuses a zero duration that the file wrote where a
// missing key means a default: `stopTimeout: 0s` asks for something (no
// time at all?) that the default is not, and pilot will not guess. The
// message says what leaving it out gives.
func notExplicitZero(p *problems, path string, d time.Duration, whenLeftOut string) {
	if d == 0 && p.explicit(path) {
		p.add(path, "must be > 0 (leave it out for %s)", whenLeftOut)
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
