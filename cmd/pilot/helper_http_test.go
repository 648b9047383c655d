package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// httpHelper is "helper http PORT MARKER": an app serving 127.0.0.1:PORT,
// whose /health answers 500 while the file MARKER exists and 200 otherwise
// (/ always answers 200 "hello", after ?sleep=DURATION if given, with the
// header X-Helper-Port: PORT, so a proxy test can tell its replicas apart).
// It prints "ready PID" once it listens and "got SIGTERM UNIXMICRO" (wall
// clock, µs) when a TERM or INT arrives, then shuts down gracefully
// (in-flight requests finish, at most 1 s) and exits 0.
func httpHelper(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "helper http: want PORT MARKER")
		return 100
	}
	port, marker := args[0], args[1]
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper http:", err)
		return 98
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		if _, err := os.Stat(marker); err == nil {
			http.Error(w, "unhealthy", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil && d > 0 {
			time.Sleep(min(d, time.Second))
		}
		w.Header().Set("X-Helper-Port", port)
		fmt.Fprintln(w, "hello")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	fmt.Printf("ready %d\n", os.Getpid())
	s := <-sigs
	fmt.Printf("got %s %d\n", signalName(s.(syscall.Signal)), time.Now().UnixMicro())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	return 0
}
