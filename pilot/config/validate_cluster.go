package config

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// reloadSignals are the signals that may start a rolling reload: the ones
// pilot can catch that do not already mean something to it (TERM and INT
// stop it, CHLD is its own, KILL and STOP cannot be caught).
var reloadSignals = []syscall.Signal{unix.SIGHUP, unix.SIGUSR1, unix.SIGUSR2}

// socket is a listen address pilot binds: where it was written, and its
// host and port as they compare for overlaps.
type socket struct {
	path, text string
	host       string // "" for every address; an IP's canonical form; or as written
	port       int
}

// overlaps reports whether two sockets cannot both be bound: the same port
// with either on every address, or on the same host (localhost being the
// loopback addresses).
func (s socket) overlaps(o socket) bool {
	if s.port != o.port {
		return false
	}
	return s.host == "" || o.host == "" || s.host == o.host || s.isLoopbackName(o) || o.isLoopbackName(s)
}

func (s socket) isLoopbackName(o socket) bool {
	return s.host == "localhost" && (o.host == "127.0.0.1" || o.host == "::1")
}

func (c *Config) validateCluster(p *problems) {
	runBy := map[string]int{} // job name → index of the first watch that runs it on change
	for i, w := range c.Watches {
		if _, seen := runBy[w.OnChange.Run]; !seen && w.OnChange.Run != "" {
			runBy[w.OnChange.Run] = i
		}
	}
	var bound []socket
	if t := c.Telemetry; t != nil {
		// A telemetry.listen that does not parse is reported on its own;
		// one on a host name has its port.
		if s, _ := parseSocket(t.Listen); s.port != 0 {
			s.path, s.text = "telemetry.listen", t.Listen
			bound = append(bound, s)
		}
	}
	for i := range c.Jobs {
		j := &c.Jobs[i]
		path := fmt.Sprintf("jobs[%d]", i)
		for k, text := range j.Listen {
			at := fmt.Sprintf("%s.listen[%d]", path, k)
			s, err := parseSocket(text)
			if err != nil {
				p.add(at, "%s: %v", quote(text), err)
				continue
			}
			s.path, s.text = at, text
			if k := slices.IndexFunc(bound, s.overlaps); k >= 0 {
				p.add(at, "%s: port %d is also bound by %s (%s)", quote(text), s.port, bound[k].path, quote(bound[k].text))
				continue
			}
			bound = append(bound, s)
		}
		watch, runOnChange := runBy[j.Name]
		j.validateCluster(p, path, runOnChange, watch)
	}
}

// parseSocket reads a listen address: host:port, where host is empty
// (every address), an IP address (IPv6 in brackets) or localhost, and port
// is a number from 1 to 65535. Port 0 is refused: the kernel would choose
// one, which the app behind it cannot know. With a host of another kind
// the socket comes back with its port and the host as written, beside the
// error, for telemetry.listen, which takes any host.
func parseSocket(text string) (socket, error) {
	host, port, err := net.SplitHostPort(text)
	if err != nil {
		return socket{}, errors.New(`not host:port (":3000", "127.0.0.1:3000", "[::1]:3000")`)
	}
	n, err := strconv.Atoi(port)
	if err != nil || strings.TrimLeft(port, "0123456789") != "" || n < 1 || n > 65535 {
		return socket{}, fmt.Errorf("port %s: want 1-65535 (not 0: the app must know its port)", quote(port))
	}
	s := socket{host: host, port: n}
	switch ip := net.ParseIP(host); {
	case ip != nil && ip.IsUnspecified():
		s.host = "" // 0.0.0.0 and [::] are every address
	case ip != nil:
		s.host = ip.String()
	case host != "" && host != "localhost":
		return s, fmt.Errorf("host %s is not an IP address or localhost (leave it empty for every address)", quote(host))
	}
	return s, nil
}

// validateCluster checks the cluster keys of one job. runOnChange tells
// whether watches[watch] runs the job on change.
func (j *Job) validateCluster(p *problems, path string, runOnChange bool, watch int) {
	if j.Instances.N < 0 || j.Instances.N > MaxInstances || (j.Instances.Auto && j.Instances.N != 0) {
		got := strconv.Itoa(j.Instances.N)
		if j.Instances.Auto {
			got = fmt.Sprintf(`both "auto" and %d`, j.Instances.N)
		}
		p.add(path+".instances", "%s", instancesProblem(got))
	}
	if !j.Cluster() {
		for _, k := range []struct {
			key string
			set bool
		}{{"readiness", j.Readiness != ""}, {"readyTimeout", j.ReadyTimeout != 0}, {"reloadSignal", j.ReloadSignal != 0}} {
			if k.set || p.explicit(path+"."+k.key) {
				p.add(path+"."+k.key, "only for a cluster job (instances or listen)")
			}
		}
		return
	}
	// A cluster job is named by the key that made it one.
	key := "listen"
	if j.Instances.Set() {
		key = "instances"
	}
	switch {
	case j.Every > 0:
		p.add(path+"."+key, "a periodic job (every) runs one copy at a time; remove %s or every", key)
	case runOnChange:
		p.add(path+"."+key, "watches[%d].onChange.run runs this job once per change, as a one-shot; remove %s or the watch's run", watch, key)
	case j.Sensor:
		p.add(path+"."+key, "a sensor job's samples are one set of values, which copies would overwrite; remove %s or sensor", key)
	}
	switch j.Readiness {
	case ReadinessHealth:
		if j.Health == nil {
			p.addAbout([]string{path + ".health"}, path+".readiness", "health needs a health check (health)")
		}
	case ReadinessMessage:
		if len(j.Listen) == 0 && (j.Node == nil || !j.Node.Metrics) {
			p.add(path+".readiness", "message comes through pilot's Node agent, which only a job with listen or node: {metrics: true} has")
		}
	}
	switch rt := j.ReadyTimeout; {
	case rt == 0 && p.explicit(path+".readyTimeout"):
		p.add(path+".readyTimeout", "must be ≥ %s (leave it out for the default %s)", formatDuration(MinReadyTimeout), formatDuration(DefaultReadyTimeout))
	case rt != 0 && rt < MinReadyTimeout:
		p.add(path+".readyTimeout", "must be ≥ %s", formatDuration(MinReadyTimeout))
	}
	if sig := j.ReloadSignal; sig != 0 {
		switch {
		case !slices.Contains(reloadSignals, syscall.Signal(sig)):
			p.add(path+".reloadSignal", "%s cannot be a reload signal (use SIGHUP, SIGUSR1 or SIGUSR2: TERM and INT stop pilot, KILL and STOP cannot be caught)", sig)
		case slices.Contains(j.ForwardSignals, sig):
			p.add(path+".reloadSignal", "%s is also in forwardSignals: pilot either passes it on or reloads, not both", sig)
		}
	}
}
