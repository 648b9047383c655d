// Command app is the capacity benchmark's stand-in for a user's service:
// `app PORT` answers 200 "ok" on every path of 127.0.0.1:PORT until
// SIGTERM. It is the standard library only, built static and stripped, so
// that 300 of them cost little (about 1 MiB of private memory each; the
// text is shared). It dies with its parent (PR_SET_PDEATHSIG): pilot runs
// it, and a pilot SIGKILLed because the benchmark died must not leave it
// holding its port.
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

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: app PORT")
		os.Exit(2)
	}
	// Set before anything else, then check the parent is still the one
	// that started us: had it died in between, no signal would come.
	ppid := os.Getppid()
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); e != 0 || os.Getppid() != ppid {
		os.Exit(1)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", os.Args[1]))
	if err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(1)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() { _ = srv.Serve(l) }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	<-sigs
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
