package output

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// helperEnv makes the test binary act as a child process (go-plugin style).
const helperEnv = "PILOT_OUTPUT_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	goleak.VerifyTestMain(m)
}

func runHelper(mode string) int {
	switch mode {
	case "print":
		os.Stdout.WriteString("out 1\nout 2\r\npartial")
		os.Stderr.WriteString("err <1>\n")
		return 0
	case "long":
		// A 5 MiB line, then two short ones, in one go (issue 10 item 1).
		w := bufio.NewWriterSize(os.Stdout, 1<<20)
		w.WriteString(strings.Repeat("x", longLineBytes) + "\nline2\nline3\n")
		w.Flush()
		return 0
	case "hold":
		// Like a grandchild that inherited the job's stdout: write, then
		// keep the pipe open until told to go (stdin closes).
		os.Stdout.WriteString("held\npartial")
		io.Copy(io.Discard, os.Stdin)
		return 0
	}
	return 2
}

func helperCommand(mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// GORACE: a race-enabled helper would otherwise sleep a second on exit.
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "GORACE=atexit_sleep_ms=0")
	return cmd
}

// syncBuffer is a destination that tests may read while writers still run.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// run writes input as a child would and returns what reached the sink.
func run(t *testing.T, mode Mode, input string, opts ...Option) string {
	t.Helper()
	var out syncBuffer
	a, err := NewSink(&out).Attach(mode, "app", "stdout", opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Child.WriteString(input); err != nil {
		t.Fatal(err)
	}
	if err := a.Finish(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n := a.Dropped(); n != 0 {
		t.Errorf("dropped %d lines with an idle sink", n)
	}
	return out.String()
}

// summary describes output by line lengths, for outputs too big to print.
func summary(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		fmt.Fprintf(&b, "[%d %.20q] ", len(line), line)
	}
	return b.String()
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": Raw, "raw": Raw, "prefixed": Prefixed, "json": JSON} {
		if got, err := ParseMode(in); got != want || err != nil {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"JSON", "text", " raw"} {
		if _, err := ParseMode(in); err == nil {
			t.Errorf("ParseMode(%q) succeeded", in)
		}
	}
}

func TestPrefixed(t *testing.T) {
	x := func(n int) string { return strings.Repeat("x", n) }
	const lineCap = 2*readBufferBytes - 1 // a '\r' just past it ends a read chunk
	tests := []struct {
		name, in, want string
		opts           []Option
	}{
		{name: "lines", in: "listening on 3000\nready\n", want: "app | listening on 3000\napp | ready\n"},
		{name: "empty input", in: "", want: ""},
		{name: "empty lines", in: "\n\n", want: "app | \napp | \n"},
		{name: "partial last line", in: "a\nb", want: "app | a\napp | b\n"},
		{name: "crlf", in: "a\r\nb\r\n", want: "app | a\napp | b\n"},
		{name: "carriage return inside a line is kept", in: "50%\r100%\n", want: "app | 50%\r100%\n"},
		{name: "crlf on a partial last line", in: "a\r", want: "app | a\n"},
		{name: "200 KiB line is one line", in: x(200<<10) + "\n", want: "app | " + x(200<<10) + "\n"},
		{
			name: "line over the cap is split into prefixed pieces",
			in:   x(25) + "\n",
			want: "app | " + x(10) + "\napp | " + x(10) + "\napp | " + x(5) + "\n",
			opts: []Option{WithMaxLineBytes(10)},
		},
		{
			name: "long line over the cap, split across reads",
			in:   x(250<<10) + "\nnext\n",
			want: "app | " + x(100<<10) + "\napp | " + x(100<<10) + "\napp | " + x(50<<10) + "\napp | next\n",
			opts: []Option{WithMaxLineBytes(100 << 10)},
		},
		{
			name: "line of exactly the cap with crlf is one line",
			in:   x(lineCap) + "\r\n",
			want: "app | " + x(lineCap) + "\n",
			opts: []Option{WithMaxLineBytes(lineCap)},
		},
		{
			name: "partial last line over the cap",
			in:   x(25),
			want: "app | " + x(10) + "\napp | " + x(10) + "\napp | " + x(5) + "\n",
			opts: []Option{WithMaxLineBytes(10)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(t, Prefixed, tt.in, tt.opts...); got != tt.want {
				t.Errorf("got  %s\nwant %s", summary(got), summary(tt.want))
			}
		})
	}
}

func TestJSON(t *testing.T) {
	lines := []string{
		`plain`,
		`quotes " and \ backslash`,
		`<html> & "json" {"nested":true}`,
		"tab\tand control \x01 chars",
		"invalid utf-8 \xff\xfe here",
		"",
		"crlf",
		"partial",
	}
	in := strings.Join(lines[:len(lines)-2], "\n") + "\n" + "crlf\r\n" + "partial"
	out := run(t, JSON, in)

	records := strings.SplitAfter(out, "\n")
	if last := records[len(records)-1]; last != "" {
		t.Fatalf("output does not end in a newline: %q", last)
	}
	records = records[:len(records)-1]
	if len(records) != len(lines) {
		t.Fatalf("got %d records, want %d:\n%s", len(records), len(lines), out)
	}
	for i, rec := range records {
		if !json.Valid([]byte(rec)) {
			t.Errorf("record %d is not valid JSON: %s", i, rec)
			continue
		}
		var got jsonRecord
		if err := json.Unmarshal([]byte(rec), &got); err != nil {
			t.Fatal(err)
		}
		want := validUTF8(lines[i])
		if got.Job != "app" || got.Stream != "stdout" || got.Line != want {
			t.Errorf("record %d = %+v, want job app, stream stdout, line %q", i, got, want)
		}
		ts, err := time.Parse(time.RFC3339Nano, got.Time)
		if err != nil || ts.Location() != time.UTC || time.Since(ts) > time.Minute {
			t.Errorf("record %d: time %q is not a recent RFC 3339 UTC time (%v)", i, got.Time, err)
		}
	}
	if !strings.Contains(out, `"<html> & `) {
		t.Errorf("HTML characters were escaped: %s", out)
	}
}

// validUTF8 replaces each invalid byte of s with U+FFFD, as encoding/json does.
func validUTF8(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

func TestRawHandsOverTheSinkFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := NewSink(f).Attach(Raw, "app", "stdout")
	if err != nil {
		t.Fatal(err)
	}
	if a.Child != f {
		t.Fatalf("raw Child = %v, want the sink's own file %v", a.Child, f)
	}
	a.Started()
	if err := a.Finish(time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("still open\n"); err != nil {
		t.Errorf("the sink's file was closed: %v", err)
	}

	if _, err := NewSink(&bytes.Buffer{}).Attach(Raw, "app", "stdout"); err == nil {
		t.Error("raw mode on a sink that is not a file succeeded")
	}
}

func TestAttachRejects(t *testing.T) {
	sink := NewSink(io.Discard)
	for name, attach := range map[string]func() (*Attachment, error){
		"unknown mode":  func() (*Attachment, error) { return sink.Attach("text", "app", "stdout") },
		"zero buffer":   func() (*Attachment, error) { return sink.Attach(Prefixed, "app", "stdout", WithBufferBytes(0)) },
		"negative line": func() (*Attachment, error) { return sink.Attach(JSON, "app", "stdout", WithMaxLineBytes(-1)) },
	} {
		if _, err := attach(); err == nil {
			t.Errorf("%s: Attach succeeded", name)
		}
	}
}

// TestChildProcess runs a real child the way package jobs does.
func TestChildProcess(t *testing.T) {
	var out syncBuffer
	sink := NewSink(&out)
	stdout, err := sink.Attach(Prefixed, "app", "stdout")
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := sink.Attach(JSON, "app", "stderr")
	if err != nil {
		stdout.Abort()
		t.Fatal(err)
	}
	cmd := helperCommand("print")
	cmd.Stdout, cmd.Stderr = stdout.Child, stderr.Child
	if err := cmd.Start(); err != nil {
		stdout.Abort()
		stderr.Abort()
		t.Fatal(err)
	}
	stdout.Started()
	stderr.Started()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []*Attachment{stdout, stderr} {
		if err := a.Finish(5 * time.Second); err != nil {
			t.Error(err)
		}
	}

	got := out.String()
	for _, want := range []string{"app | out 1\n", "app | out 2\n", "app | partial\n", `"stream":"stderr","line":"err <1>"}` + "\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestAbortBeforeStart(t *testing.T) {
	var out syncBuffer
	a, err := NewSink(&out).Attach(Prefixed, "app", "stdout")
	if err != nil {
		t.Fatal(err)
	}
	a.Abort()
	if got := out.String(); got != "" {
		t.Errorf("an aborted attachment wrote %q", got)
	}
}

const longLineBytes = 5 << 20

// Issue 10 item 1: a line over the cap is split, and nothing after it is
// lost when the sink keeps up — here a plain file, written by a real child.
func TestLongLineThenShortOnesToAFile(t *testing.T) {
	for _, mode := range []Mode{Prefixed, JSON} {
		t.Run(string(mode), func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "out"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			a, err := NewSink(f).Attach(mode, "app", "stdout")
			if err != nil {
				t.Fatal(err)
			}
			cmd := helperCommand("long")
			cmd.Stdout = a.Child
			if err := cmd.Start(); err != nil {
				a.Abort()
				t.Fatal(err)
			}
			a.Started()
			if err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			if err := a.Finish(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for rec := range strings.Lines(string(data)) {
				rec = strings.TrimSuffix(rec, "\n")
				if mode == JSON {
					var r jsonRecord
					if err := json.Unmarshal([]byte(rec), &r); err != nil {
						t.Fatalf("record %.60q: %v", rec, err)
					}
					rec = r.Line
				} else {
					rec = strings.TrimPrefix(rec, "app | ")
				}
				got = append(got, rec)
			}
			piece := strings.Repeat("x", defaultMaxLineBytes)
			want := []string{piece, piece, piece, piece, piece, "line2", "line3"}
			if !slices.Equal(got, want) || a.Dropped() != 0 {
				t.Fatalf("got %s(dropped %d), want 5 pieces of 1 MiB, line2, line3", summary(strings.Join(got, "\n")+"\n"), a.Dropped())
			}
		})
	}
}

// TestFinishGivesUpOnAHeldPipe holds the write end open in another process,
// as a grandchild that inherited the job's stdout does.
func TestFinishGivesUpOnAHeldPipe(t *testing.T) {
	var out syncBuffer
	a, err := NewSink(&out).Attach(Prefixed, "app", "stdout")
	if err != nil {
		t.Fatal(err)
	}
	holder := helperCommand("hold")
	holder.Stdout = a.Child
	release, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		a.Abort()
		t.Fatal(err)
	}
	defer func() {
		release.Close()
		if err := holder.Wait(); err != nil {
			t.Errorf("holder: %v", err)
		}
	}()
	a.Started()
	eventually(t, "the holder's first line", func() bool { return strings.Contains(out.String(), "app | held\n") })

	const timeout = 100 * time.Millisecond
	start := time.Now()
	err = a.Finish(timeout)
	if elapsed := time.Since(start); elapsed > timeout+2*time.Second {
		t.Errorf("Finish took %v with a %v timeout", elapsed, timeout)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Finish = %v, want a deadline error", err)
	}
	// The partial line read before the deadline is not lost.
	eventually(t, "the partial line", func() bool { return strings.Contains(out.String(), "app | partial\n") })
}

// blockingWriter blocks every write until released, like a stalled log
// collector on the other end of pilot's stdout.
type blockingWriter struct {
	release chan struct{}
	out     syncBuffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	return w.out.Write(p)
}

func TestBlockedSinkDoesNotBlockTheChild(t *testing.T) {
	sink := &blockingWriter{release: make(chan struct{})}
	a, err := NewSink(sink).Attach(Prefixed, "app", "stdout")
	if err != nil {
		t.Fatal(err)
	}

	// 10 MiB of numbered 100-byte lines, written as a child would.
	const lineBytes, total = 100, 10 << 20 / 100
	written := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(a.Child, 64<<10)
		for i := range total {
			fmt.Fprintf(w, "%08d %s\n", i, strings.Repeat("x", lineBytes-10))
		}
		written <- w.Flush()
	}()
	select {
	case err := <-written:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(sink.release)
		a.Finish(time.Second)
		t.Fatal("the child blocked on a stalled sink")
	}
	if a.Dropped() == 0 {
		t.Fatal("no lines dropped although 10 MiB met a stalled sink with a 1 MiB buffer")
	}

	close(sink.release)
	if err := a.Finish(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	dropped := a.Dropped()

	// Every line either arrived whole and in order or was counted, and the
	// loss was reported in the output.
	notice := regexp.MustCompile(`^app \| pilot: dropped (\d+) lines?: the job wrote faster than pilot's stdout took its output, with 1 MiB waiting$`)
	line := regexp.MustCompile(`^app \| (\d{8}) x{90}$`)
	var kept, reported uint64
	next := -1
	for s := range strings.Lines(sink.out.String()) {
		s = strings.TrimSuffix(s, "\n")
		if m := notice.FindStringSubmatch(s); m != nil {
			n, _ := strconv.ParseUint(m[1], 10, 64)
			reported += n
			continue
		}
		m := line.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("mangled line %.60q", s)
		}
		i, _ := strconv.Atoi(m[1])
		if i <= next {
			t.Fatalf("line %d after line %d", i, next)
		}
		next = i
		kept++
	}
	if reported != dropped {
		t.Errorf("reported %d dropped lines, counted %d", reported, dropped)
	}
	if kept+dropped != total {
		t.Errorf("kept %d + dropped %d = %d lines, want %d", kept, dropped, kept+dropped, total)
	}
}

// chunkyWriter writes in small pieces and yields between them, so that
// writes from different goroutines would interleave if the Sink let them.
type chunkyWriter struct{ syncBuffer }

func (w *chunkyWriter) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		n := min(len(rest), 512)
		w.syncBuffer.Write(rest[:n])
		rest = rest[n:]
		runtime.Gosched()
	}
	return len(p), nil
}

func TestConcurrentWritersDoNotInterleave(t *testing.T) {
	const jobs, lines = 8, 200
	var dst chunkyWriter
	sink := NewSink(&dst)

	var wg sync.WaitGroup
	for j := range jobs {
		name := fmt.Sprintf("job%d", j)
		a, err := sink.Attach(Prefixed, name, "stdout", WithBufferBytes(64<<20))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := range lines {
				n := (i*997 + j*131) % 4000 // lengths from 0 to 4 KiB, across pipe reads
				fmt.Fprintf(a.Child, "%s %d %d %s\n", name, i, n, strings.Repeat(name[3:], n))
			}
			if err := a.Finish(10 * time.Second); err != nil {
				t.Error(err)
			}
			if a.Dropped() != 0 {
				t.Errorf("%s dropped %d lines", name, a.Dropped())
			}
		})
	}
	// Pilot's own log lines go through the same Sink.
	wg.Go(func() {
		for i := range lines {
			fmt.Fprintf(sink, "pilot %d %d %s\n", i, 1000, strings.Repeat("p", 1000))
		}
	})
	wg.Wait()

	line := regexp.MustCompile(`^(?:(job(\d)) \| )?(\w+) (\d+) (\d+) (\w*)$`)
	seen := map[string]int{}
	for s := range strings.Lines(dst.String()) {
		m := line.FindStringSubmatch(strings.TrimSuffix(s, "\n"))
		if m == nil {
			t.Fatalf("mangled line %.80q", s)
		}
		prefix, digit, name, seq, n, payload := m[1], m[2], m[3], m[4], m[5], m[6]
		if prefix != "" && prefix != name {
			t.Fatalf("line of %s under prefix %s", name, prefix)
		}
		want, _ := strconv.Atoi(n)
		fill := digit
		if prefix == "" {
			fill = "p"
		}
		if payload != strings.Repeat(fill, want) {
			t.Fatalf("%s line %s: payload of %d bytes is not %d×%q", name, seq, len(payload), want, fill)
		}
		if i, _ := strconv.Atoi(seq); i != seen[name] {
			t.Fatalf("%s line %d after %d lines", name, i, seen[name])
		}
		seen[name]++
	}
	for j := range jobs {
		if name := fmt.Sprintf("job%d", j); seen[name] != lines {
			t.Errorf("%s: %d lines, want %d", name, seen[name], lines)
		}
	}
	if seen["pilot"] != lines {
		t.Errorf("pilot: %d lines, want %d", seen["pilot"], lines)
	}
}

func BenchmarkPrefixed(b *testing.B) {
	a, err := NewSink(io.Discard).Attach(Prefixed, "app", "stdout")
	if err != nil {
		b.Fatal(err)
	}
	// A child writes whole blocks of lines, as a buffered logger does.
	const linesPerBlock = 64
	block := bytes.Repeat([]byte(strings.Repeat("x", 79)+"\n"), linesPerBlock)
	b.SetBytes(int64(len(block)))
	start, blocks := time.Now(), 0
	for b.Loop() {
		if _, err := a.Child.Write(block); err != nil {
			b.Fatal(err)
		}
		blocks++
	}
	if err := a.Finish(time.Minute); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(blocks*linesPerBlock)/time.Since(start).Seconds(), "lines/s")
	b.ReportMetric(float64(a.Dropped()), "dropped")
}

// Only a stream pilot reads through a pipe has anything to finish.
func TestCopied(t *testing.T) {
	for mode, want := range map[Mode]bool{Raw: false, Prefixed: true, JSON: true} {
		a, err := NewSink(os.Stdout).Attach(mode, "app", "stdout")
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Copied(); got != want {
			t.Errorf("%s: Copied() = %v, want %v", mode, got, want)
		}
		a.Abort()
	}
}
