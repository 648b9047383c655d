// Package benchkit is what the benchmark commands that run pilot against a
// real Consul agent (test/bench/consul, test/bench/watch,
// test/bench/capacity, …) share: their common flags, the error exit, the
// setup (a temp dir, the pilot binary, an agent), pilot started on a config
// with its log in a file and stopped again, the percentiles and the raw
// JSON results, the machine's busy meter, a rendered upstream read back and
// its renames followed with inotify, and a process's CPU and memory from
// /proc.
package benchkit

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nodepilot/pilot/test/consulagent"
)

// Flags are the flags every command has, registered on flag.CommandLine by
// CommonFlags.
type Flags struct {
	Pilot   *string // -pilot: the pilot binary ("": go build ./cmd/pilot)
	Strict  *bool   // -strict: exit 1 when a target is missed
	Results *string // -results: directory for the raw JSON ("": none)
}

// CommonFlags registers -pilot (default $PILOT), -strict and -results
// (default test/bench/results).
func CommonFlags() Flags {
	return Flags{
		Pilot:   flag.String("pilot", os.Getenv("PILOT"), "pilot binary (default: go build ./cmd/pilot)"),
		Strict:  flag.Bool("strict", false, "exit 1 when a target is missed"),
		Results: flag.String("results", "test/bench/results", "directory for the raw JSON (\"\" for none)"),
	}
}

// Failer returns the command's harness-error exit: it prints
// "NAME: MESSAGE" to stderr and returns 2.
func Failer(name string) func(format string, a ...any) int {
	return func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, name+": "+format+"\n", a...)
		return 2
	}
}

// Env is what a run stands on: a temp dir, the pilot binary and a real
// Consul agent. Close removes the one and stops the other.
type Env struct {
	Dir   string // temp dir, removed by Close
	Pilot string // the pilot binary
	Agent *consulagent.Agent
	// PilotEnv is added to the environment of every pilot StartPilot
	// starts (CONSUL_HTTP_ADDR, say).
	PilotEnv []string
}

// Setup makes a temp dir (os.MkdirTemp's pattern), builds ./cmd/pilot into
// it unless pilotBin is set (run from the repository root), and starts a
// Consul agent. Its errors are ready to print.
func Setup(pattern, pilotBin string) (*Env, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir}
	if e.Pilot, err = BuildPilot(dir, pilotBin); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if e.Agent, err = consulagent.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("consul agent: %v", err)
	}
	return e, nil
}

// BuildPilot returns pilotBin when set, else builds pilot's command into
// dir (from anywhere inside the repository) and returns its path.
func BuildPilot(dir, pilotBin string) (string, error) {
	if pilotBin != "" {
		return pilotBin, nil
	}
	bin := filepath.Join(dir, "pilot")
	build := exec.Command("go", "build", "-o", bin, "github.com/nodepilot/pilot/cmd/pilot")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building pilot (run inside the repository or set PILOT): %v", err)
	}
	return bin, nil
}

// Close stops the agent and removes the temp dir.
func (e *Env) Close() {
	e.Agent.Stop()
	os.RemoveAll(e.Dir)
}

// Pilot is one running `pilot run`.
type Pilot struct {
	ConfigPath string // DIR/pilot.yaml
	LogPath    string // DIR/pilot.log: its stdout and stderr
	Socket     string // DIR/pilot.sock: its control socket

	cmd   *exec.Cmd
	logf  *os.File
	ended chan struct{}
}

// StartPilot writes cfg to DIR/pilot.yaml and starts `PILOT run --config`
// on it, its output to DIR/pilot.log (SIGKILLed should this process die).
// The caller must Stop it.
func (e *Env) StartPilot(cfg string) (*Pilot, error) {
	p := &Pilot{ConfigPath: filepath.Join(e.Dir, "pilot.yaml"), LogPath: filepath.Join(e.Dir, "pilot.log")}
	if err := os.WriteFile(p.ConfigPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(p.LogPath)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(e.Pilot, "run", "--config", p.ConfigPath)
	p.Socket = filepath.Join(e.Dir, "pilot.sock") // its own, whatever else runs
	p.cmd.Env = append(append(os.Environ(), e.PilotEnv...), "PILOT_SOCKET="+p.Socket)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting pilot: %v", err)
	}
	p.logf, p.ended = logf, make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.ended) }()
	return p, nil
}

// Pid is pilot's process id.
func (p *Pilot) Pid() int { return p.cmd.Process.Pid }

// Stop ends pilot: SIGTERM, SIGKILL after 10 s; then closes its log.
func (p *Pilot) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.ended:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.ended
	}
	p.logf.Close()
}

// Log returns pilot's log so far.
func (p *Pilot) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Rank is the nearest-rank percentile q (0 < q ≤ 1) of sorted.
func Rank(sorted []float64, q float64) float64 {
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// WriteResults writes raw as indented JSON to DIR/NAME-UTCTIME.json and
// names the file on stderr; dir "" writes nothing, and a failure to write
// is ignored (the table on stdout is the result).
func WriteResults(dir, name string, raw any) {
	if dir == "" {
		return
	}
	b, _ := json.MarshalIndent(raw, "", "  ")
	p := filepath.Join(dir, name+"-"+time.Now().UTC().Format("20060102T150405Z")+".json")
	if err := os.MkdirAll(dir, 0o755); err == nil && os.WriteFile(p, append(b, '\n'), 0o644) == nil {
		fmt.Fprintf(os.Stderr, "raw samples: %s\n", p)
	}
}

// BusyMeter is the machine's CPU use from /proc/stat between two reads,
// to tell readers of a result how busy the shared machine was.
type BusyMeter struct{ idle, total uint64 }

// StartBusy begins a measure.
func StartBusy() BusyMeter { idle, total := cpuTimes(); return BusyMeter{idle, total} }

// Busy is the percentage of all CPUs' time not idle since StartBusy.
func (m BusyMeter) Busy() float64 {
	idle, total := cpuTimes()
	if total <= m.total {
		return 0
	}
	return 100 * (1 - float64(idle-m.idle)/float64(total-m.total))
}

func cpuTimes() (idle, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		var v uint64
		fmt.Sscan(f, &v)
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return idle, total
}
