package telemetry

import (
	"fmt"
	"strings"
	"testing"
)

// Every field holds its own number (field k holds 1000+k), so reading the
// wrong field gives the wrong value; the command name holds ") (" and
// spaces, as a process may name itself.
func TestParseStat(t *testing.T) {
	fields := make([]string, 0, 52)
	for k := 3; k <= 52; k++ {
		fields = append(fields, fmt.Sprint(1000+k))
	}
	fields[0] = "S" // field 3, the state
	line := "42 (a) (b c) " + strings.Join(fields, " ") + "\n"
	got, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{state: 'S', utime: 1014, stime: 1015, starttime: 1022, rssPages: 1024}
	if got != want {
		t.Errorf("parseStat = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "42 (name", "42 (name) S 1 2"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) = nil error, want errStat", bad)
		}
	}
}
