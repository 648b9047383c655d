package main

import (
	"os"
	"path/filepath"
	"strconv"
)

// childJS is the Node child. Its last two arguments are the line FIFO and
// the mode (pm2's fork mode puts its own wrapper in argv[1], so count from
// the end). Every line carries process.hrtime.bigint(): CLOCK_MONOTONIC ns.
const childJS = `'use strict';
const t0 = process.hrtime.bigint(); // first statement: the start clock
const fs = require('fs');
const a = process.argv;
const fifo = a[a.length - 2], mode = a[a.length - 1];
const fd = fs.openSync(fifo, 'w');
const line = (tag, t, extra) =>
  fs.writeSync(fd, tag + ' mono ' + t + ' ' + process.pid + (extra ? ' ' + extra : '') + '\n');
switch (mode) {
  case 'start':
    line('start', t0);
    break;
  case 'idle':
    line('ready', t0);
    break;
  case 'term': {
    const h = (sig) => {
      line('sig', process.hrtime.bigint(), sig);
      line('exit', process.hrtime.bigint());
      process.exit(0);
    };
    process.on('SIGTERM', h);
    process.on('SIGINT', h); // pm2 stops apps with SIGINT
    line('ready', process.hrtime.bigint());
    break;
  }
  default:
    throw new Error('unknown mode ' + mode);
}
setInterval(() => {}, 1000);
`

// shStart: the sh child's first statement prints CLOCK_REALTIME in ns
// (`date +%s%N`; dash has no clock builtin, so this includes one fork+exec
// of date in every column alike), then the child stays alive.
const shStart = `echo "start real $(date +%s%N) $$" > "$1"; exec sleep 100000`

// shOrphans: an intermediate subshell forks $3 grandchildren, each blocked
// opening the release FIFO $2 for reading, and exits: they are orphaned and
// reparented to PID 1 of the namespace. The child then reports and stays.
const shOrphans = `( i=0; while [ "$i" -lt "$3" ]; do { : < "$2"; } & i=$((i+1)); done )
echo "orphans real $(date +%s%N) $$" > "$1"
exec sleep 100000`

func (b *Bench) writeChildren() error {
	b.childJS = filepath.Join(b.tmp, "child.js")
	return os.WriteFile(b.childJS, []byte(childJS), 0o644)
}

func (b *Bench) nodeChild(mode string) func(string) Child {
	return func(fifo string) Child {
		return Child{
			Argv:   []string{b.node, b.childJS, fifo, mode},
			Script: b.childJS, Interp: b.node, Args: []string{fifo, mode},
		}
	}
}

func (b *Bench) shChild(script string, extra ...string) func(string) Child {
	return func(fifo string) Child {
		args := append([]string{"-c", script, "sh", fifo}, extra...)
		return Child{
			Argv:   append([]string{"/bin/sh"}, args...),
			Script: "/bin/sh", Interp: "none", Args: args,
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
