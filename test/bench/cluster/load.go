package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// wrkResult is what wrk printed.
type wrkResult struct {
	Requests int     `json:"requests"`
	RPS      float64 `json:"rps"`
	P99ms    float64 `json:"p99ms"`
	Connect  int     `json:"connectErrors"`
	Read     int     `json:"readErrors"`
	Write    int     `json:"writeErrors"`
	Timeout  int     `json:"timeouts"`
	Non2xx   int     `json:"non2xx"`
	Output   string  `json:"-"`
}

func (w wrkResult) failures() int { return w.Connect + w.Read + w.Write + w.Timeout + w.Non2xx }

var (
	reqsRE   = regexp.MustCompile(`(\d+) requests in`)
	rpsRE    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	p99RE    = regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s|m)\b`)
	sockRE   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	non2xxRE = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// runWrk runs `wrk -tT -cC -dD --latency URL` (keep-alive, its default).
// When stop is closed before d, it ends wrk early with SIGINT, on which
// wrk stops and prints its figures as at the end of -d.
func runWrk(ctx context.Context, wrk, url string, d time.Duration, threads, conns int, stop <-chan struct{}) (wrkResult, error) {
	c := exec.CommandContext(ctx, wrk, "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(conns),
		"-d"+strconv.Itoa(int(d.Round(time.Second).Seconds()))+"s", "--latency", url)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var buf bytes.Buffer
	c.Stdout, c.Stderr = &buf, &buf
	if err := c.Start(); err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- c.Wait() }()
	var err error
	select {
	case err = <-waited:
	case <-stop:
		_ = c.Process.Signal(syscall.SIGINT)
		err = <-waited
	}
	out := buf.Bytes()
	r := wrkResult{Output: string(out)}
	if err != nil {
		return r, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	m := rpsRE.FindSubmatch(out)
	mr := reqsRE.FindSubmatch(out)
	mp := p99RE.FindSubmatch(out)
	if m == nil || mr == nil || mp == nil {
		return r, fmt.Errorf("wrk: cannot read its output:\n%s", out)
	}
	r.RPS, _ = strconv.ParseFloat(string(m[1]), 64)
	r.Requests, _ = strconv.Atoi(string(mr[1]))
	v, _ := strconv.ParseFloat(string(mp[1]), 64)
	r.P99ms = v * map[string]float64{"us": 1e-3, "ms": 1, "s": 1e3, "m": 60e3}[string(mp[2])]
	if m := sockRE.FindSubmatch(out); m != nil {
		r.Connect, _ = strconv.Atoi(string(m[1]))
		r.Read, _ = strconv.Atoi(string(m[2]))
		r.Write, _ = strconv.Atoi(string(m[3]))
		r.Timeout, _ = strconv.Atoi(string(m[4]))
	}
	if m := non2xxRE.FindSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.Atoi(string(m[1]))
	}
	return r, nil
}

// sample is one request of the non-keep-alive loop.
type sample struct {
	start   time.Time
	latency time.Duration
	outcome int // okay, refused, reset, other, non2xx
	err     string
}

const (
	okay = iota
	refused
	reset
	other
	non2xx
)

// loopResult is the non-keep-alive loop's count.
type loopResult struct {
	Requests    int      `json:"requests"`
	Refused     int      `json:"connRefused"`
	Reset       int      `json:"connReset"`
	Other       int      `json:"otherErrors"`
	Non2xx      int      `json:"non2xx"`
	OtherErrors []string `json:"otherErrorSamples,omitempty"`
	// In the reload window (requests started between the reload command's
	// start and its return):
	WindowRequests int     `json:"windowRequests"`
	WindowP99ms    float64 `json:"windowP99ms"`
	WindowMaxms    float64 `json:"windowMaxMs"`
}

func (l loopResult) failures() int { return l.Refused + l.Reset + l.Other + l.Non2xx }

// loop sends requests with a new connection each (DisableKeepAlives) from
// g goroutines, one after the other in each, until ctx ends; it returns
// every finished request.
func loop(ctx context.Context, url string, g int) []sample {
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		Timeout:   5 * time.Second,
	}
	var mu sync.Mutex
	var all []sample
	var wg sync.WaitGroup
	for range g {
		wg.Go(func() {
			var mine []sample
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				s := sample{start: t0, latency: time.Since(t0)}
				switch {
				case ctx.Err() != nil:
					continue // cut by the end of the load, not a failure
				case err == nil && resp.StatusCode/100 == 2:
				case err == nil:
					s.outcome, s.err = non2xx, resp.Status
				case errors.Is(err, syscall.ECONNREFUSED):
					s.outcome = refused
				case errors.Is(err, syscall.ECONNRESET):
					s.outcome = reset
				default:
					s.outcome, s.err = other, err.Error()
				}
				mine = append(mine, s)
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return all
}

// count sums the samples, and the latencies of the answered ones (2xx)
// started in [w0, w1].
func count(samples []sample, w0, w1 time.Time) loopResult {
	var r loopResult
	var window []float64
	for _, s := range samples {
		r.Requests++
		switch s.outcome {
		case refused:
			r.Refused++
		case reset:
			r.Reset++
		case other:
			r.Other++
			if len(r.OtherErrors) < 5 {
				r.OtherErrors = append(r.OtherErrors, s.err)
			}
		case non2xx:
			r.Non2xx++
		}
		if s.outcome == okay && !s.start.Before(w0) && !s.start.After(w1) {
			window = append(window, float64(s.latency)/float64(time.Millisecond))
		}
	}
	r.WindowRequests = len(window)
	if len(window) > 0 {
		r.WindowP99ms = rank(window, .99)
		r.WindowMaxms = rank(window, 1)
	}
	return r
}
