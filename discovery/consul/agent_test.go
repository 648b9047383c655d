package consul

// Test harness: one real Consul agent (-dev) per test binary, on free
// loopback ports, from test/consulagent. In CI (env CI set) a missing or
// failed build fails the run; elsewhere the agent tests skip loudly.

import (
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nodepilot/pilot/test/consulagent"
	"github.com/nodepilot/pilot/test/toolbin"
)

type (
	testAgent   = consulagent.Agent
	healthEntry = consulagent.HealthEntry
)

var agent *testAgent

func TestMain(m *testing.M) {
	code := func() int {
		a, err := consulagent.Start()
		switch {
		case err == nil:
			agent = a
		case toolbin.Unavailable(err):
			fmt.Fprintf(os.Stderr, "FAIL: consul binary unavailable: %v (bash test/consul.sh builds it)\n", err)
			return 1
		default:
			fmt.Fprintf(os.Stderr, "FAIL: starting consul agent: %v\n", err)
			return 1
		}
		code := m.Run()
		if agent != nil {
			if code != 0 {
				fmt.Fprintf(os.Stderr, "agent log (tail):\n%s\n", consulagent.Tail(agent.Logs(), 4000))
			}
			agent.Stop()
		}
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(); err != nil && code == 0 {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			return 1
		}
		return code
	}()
	os.Exit(code)
}

// needAgent returns the package's real agent (TestMain fails the run
// without one), up again if an earlier test left it down.
func needAgent(t *testing.T) *testAgent {
	t.Helper()
	if !agent.Running() {
		if err := agent.Up(); err != nil {
			t.Fatalf("restarting agent left down by an earlier test: %v", err)
		}
	}
	return agent
}

// waitFor polls cond every 2 ms until it returns true or d passes; it
// returns how long that took.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(2 * time.Millisecond) // poll interval, bounded by d
	}
}

// holdFor asserts cond stays true for d (used for "must not happen yet").
func holdFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if !cond() {
			t.Fatalf("%s: broken after %s", what, time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
