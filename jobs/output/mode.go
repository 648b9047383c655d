package output

import "fmt"

// Mode says how a job's output reaches pilot's stdout and stderr.
type Mode string

const (
	// Raw hands the child pilot's own file descriptor: bytes pass through
	// untouched and pilot never sees them.
	Raw Mode = "raw"
	// Prefixed puts "JOB | " in front of every line.
	Prefixed Mode = "prefixed"
	// JSON turns every line into one JSON object on a line of its own.
	JSON Mode = "json"
)

// ParseMode parses a job's `output:` setting. The empty string is Raw, the
// default, so that the default lives here and nowhere else.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return Raw, nil
	case Raw, Prefixed, JSON:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q (want raw, prefixed or json)", s)
}

// UnmarshalText reads a job's `output:` setting with ParseMode, so that a
// config field of type Mode is checked as it is decoded.
func (m *Mode) UnmarshalText(text []byte) error {
	mode, err := ParseMode(string(text))
	if err != nil {
		return err
	}
	*m = mode
	return nil
}
