package output

import (
	"bytes"
	"encoding/json"
	"time"
)

// A formatter turns text into one whole record ending in '\n'. Records never
// contain another '\n', so a record is exactly one line of output.
type formatter interface {
	// line appends the record for one line the child wrote.
	line(dst, text []byte) []byte
	// notice appends a record of pilot's own about this stream.
	notice(dst []byte, text string) []byte
}

// prefixFormat is the prefix itself, "JOB | ".
type prefixFormat string

func (p prefixFormat) line(dst, text []byte) []byte {
	dst = append(dst, p...)
	dst = append(dst, text...)
	return append(dst, '\n')
}

func (p prefixFormat) notice(dst []byte, text string) []byte {
	dst = append(dst, p...)
	dst = append(dst, "pilot: "...)
	dst = append(dst, text...)
	return append(dst, '\n')
}

type jsonFormat struct{ job, stream string }

// noticeStream is the "stream" of pilot's own records in JSON mode.
const noticeStream = "pilot"

type jsonRecord struct {
	Time   string `json:"time"`
	Job    string `json:"job"`
	Stream string `json:"stream"`
	Line   string `json:"line"`
}

func (f jsonFormat) line(dst, text []byte) []byte {
	return appendJSON(dst, jsonRecord{Job: f.job, Stream: f.stream, Line: string(text)})
}

func (f jsonFormat) notice(dst []byte, text string) []byte {
	return appendJSON(dst, jsonRecord{Job: f.job, Stream: noticeStream, Line: text})
}

// appendJSON stamps rec with the current time and appends it as one line.
// encoding/json escapes control characters (so the record holds no raw
// newline) and replaces invalid UTF-8 with U+FFFD, so every record is valid
// JSON whatever bytes the child wrote.
func appendJSON(dst []byte, rec jsonRecord) []byte {
	rec.Time = time.Now().UTC().Format(time.RFC3339Nano)
	b := bytes.NewBuffer(dst)
	enc := json.NewEncoder(b)
	// Log lines are full of <, > and &; \u003c is valid JSON but unreadable.
	enc.SetEscapeHTML(false)
	// Encoding a struct of strings cannot fail.
	_ = enc.Encode(rec)
	return b.Bytes()
}
