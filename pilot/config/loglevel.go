package config

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// logLevels is the one list of pilot's log level names, with the spellings
// other tools use for the same level (warning, err) beside the canonical
// one.
var logLevels = []struct {
	names []string
	level slog.Level
}{
	{[]string{"debug"}, slog.LevelDebug},
	{[]string{"info"}, slog.LevelInfo},
	{[]string{"warn", "warning"}, slog.LevelWarn},
	{[]string{"error", "err"}, slog.LevelError},
}

// ParseLogLevel reads a log level as users write it, in any case: debug,
// info, warn (or warning), error (or err). It serves both log.level and
// PILOT_LOG_LEVEL.
func ParseLogLevel(s string) (slog.Level, error) {
	lower := strings.ToLower(strings.TrimSpace(s))
	for _, l := range logLevels {
		for _, name := range l.names {
			if lower == name {
				return l.level, nil
			}
		}
	}
	return 0, fmt.Errorf("%s is not a log level (debug, info, warn, error)", quote(s))
}

// logFormats is the one list of pilot's log formats.
var logFormats = []string{"text", "json"}

// ParseLogFormat reads a log format: text or json. It serves both
// log.format and PILOT_LOG_FORMAT.
func ParseLogFormat(s string) (string, error) {
	if !slices.Contains(logFormats, s) {
		return "", notOneOf(s, logFormats)
	}
	return s, nil
}
