package watches

import (
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nodepilot/pilot/pilot/config"
	"github.com/nodepilot/pilot/telemetry"
)

// Names names each watch for its series and log lines
// (telemetry.WatchName): the service it follows, with "#N" added for the
// Nth of several watches of one service; unique within ws.
func Names(ws []config.Watch) []telemetry.WatchName {
	taken := map[string]bool{}
	out := make([]telemetry.WatchName, len(ws))
	for i, w := range ws {
		name := w.Service
		for n := 2; taken[name]; n++ {
			name = fmt.Sprintf("%s#%d", w.Service, n)
		}
		taken[name] = true
		out[i] = telemetry.WatchName{Watch: name, Service: w.Service}
	}
	return out
}

// InstancesFile is where the watch w, the i-th of its config, writes the
// instances for onChange.run, in dir (pilot's private directory); "" when
// it runs no job.
func InstancesFile(dir string, i int, w config.Watch) string {
	if w.OnChange.Run == "" {
		return ""
	}
	return filepath.Join(dir, fmt.Sprintf("watch-%d-%s.json", i, fileSafe(w.Service)))
}

// fileSafe keeps the letters, digits, '-', '_' and '.' of a service name,
// for a file name.
func fileSafe(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return r
		}
		return '_'
	}, name)
}
