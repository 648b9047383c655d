package main

import (
	"strings"
	"testing"
	"time"
)

// `pilot validate` finds everything in one pass: a type error does not
// hide the unknown signal after it, nor the unknown job or user after
// that, and every problem comes in the order of the file, FILE:LINE first.
// `pilot run` reports the same, and starts nothing.
func TestValidateReportsEverythingInFileOrder(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, `jobs:
  - name: app
    main: "yes"
    stopSignal: SIGNOPE
    exec: [sh, -c, "echo started"]
    after: [{job: migrate, state: succeeded}]
  - name: worker
    user: nosuchuser-pilot
    dir: /no/such/dir
    exec: [sh, -c, "echo started"]
`)
	want := []string{
		cfg + `:3: jobs[0].main: expected a boolean, got string "yes"`,
		cfg + `:4: jobs[0].stopSignal: unknown signal "SIGNOPE"`,
		cfg + `:6: jobs[0].after[0].job: unknown job "migrate"`,
		cfg + `:8: jobs[1].user: unknown user "nosuchuser-pilot"`,
		cfg + `:9: jobs[1].dir: /no/such/dir: no such file or directory`,
	}
	for _, args := range [][]string{{"validate", "--config", cfg}, {"run", "--config", cfg}} {
		p := startPilot(t, pilotOpts{}, args...)
		if code := p.wait(5 * time.Second); code != 2 {
			t.Fatalf("%v: exit %d, want 2:\n%s", args, code, p.errLog.String())
		}
		var got []string
		for line := range strings.Lines(p.errLog.String()) {
			if strings.Contains(line, cfg) {
				got = append(got, line)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%v: got %d problems, want %d:\n%s", args, len(got), len(want), p.errLog.String())
		}
		for i := range want {
			if !strings.Contains(got[i], want[i]) {
				t.Errorf("%v: problem %d:\n got  %s\n want %s", args, i+1, strings.TrimSpace(got[i]), want[i])
			}
		}
		if p.out.count("started") != 0 {
			t.Errorf("%v: a job started", args)
		}
	}
}
