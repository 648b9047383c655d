package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 10 item 2: `after: failed` waits until the job has failed for good,
// not its first crash while restarts remain; giving up is an error.
func TestJobsFailedOnlyWhenFinal(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, `jobs:
  - name: flaky
    shell: echo flaky-run; exit 1
    restart: {policy: on-failure, max: 2, backoff: {initial: 10ms, max: 10ms}}
  - name: alarm
    after: [{job: flaky, state: failed}]
    shell: echo alarm
`)
	p := startPilot(t, pilotOpts{}, "run", "--config", cfg)
	if code := p.wait(10 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1 (a job failed)", code)
	}
	if got := strings.Join(p.out.Lines(), ","); got != "flaky-run,flaky-run,flaky-run,alarm" {
		t.Fatalf("output %q: the alarm must come after the last of three runs", got)
	}
	p.errLog.waitLine(t, time.Second, `level=ERROR msg="giving up: restart limit reached".* job=flaky`)
}

// Issue 10 item 22: a prefixed job's "exited" line follows its last line;
// pilot's log and the job's stderr share one stream. The job writes 200 KB
// at once, so its output is still on its way when it exits.
func TestJobsExitedFollowsOutput(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, `jobs:
  - name: app
    main: true
    output: prefixed
    shell: seq -f 'line %06g ..........................................................................................' 1 2000 >&2
`)
	p := startPilot(t, pilotOpts{}, "run", "--config", cfg)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	last, exited := -1, -1
	for i, l := range p.errLog.Lines() {
		switch {
		case strings.HasPrefix(l, "app | line 002000 "):
			last = i
		case strings.Contains(l, "msg=exited") && strings.Contains(l, "job=app"):
			exited = i
		}
	}
	if last < 0 || exited < last {
		t.Fatalf("exited at line %d, the job's last line at %d", exited, last)
	}
}

// Issue 10 item 1: in prefixed mode a 5 MiB line is split at the cap and the
// lines after it all reach pilot's stdout — a plain file, as in the report —
// with nothing reported dropped.
func TestJobsOutputLongLineThenShortOnes(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, `jobs:
  - name: app
    main: true
    output: prefixed
    shell: head -c 5242880 /dev/zero | tr '\0' x; echo; echo line2; echo line3
`)
	stdout := filepath.Join(t.TempDir(), "stdout")
	p := startPilot(t, pilotOpts{wrap: []string{"sh", "-c", `exec "$@" >"$0"`, stdout}}, "run", "--config", cfg)
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	data, err := os.ReadFile(stdout)
	if err != nil {
		t.Fatal(err)
	}
	var pieces []int
	var tail []string
	for l := range strings.Lines(string(data)) {
		l = strings.TrimSuffix(l, "\n")
		if rest, ok := strings.CutPrefix(l, "app | "); ok && rest != "" && strings.Trim(rest, "x") == "" {
			pieces = append(pieces, len(rest))
		} else {
			tail = append(tail, fmt.Sprintf("%.100s", l))
		}
	}
	if len(pieces) != 5 || strings.Join(tail, ",") != "app | line2,app | line3" {
		t.Fatalf("pieces %v then %q: want 5 pieces of 1 MiB, then line2 and line3", pieces, tail)
	}
}
