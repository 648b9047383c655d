'use strict';
// pilot's Node.js runtime agent, preloaded with NODE_OPTIONS=--require by
// pilot (node.metrics). It reports event-loop delay, heap, GC and handles to
// pilot over a unix socket, one JSON object per line, about once a second.
//
// In pilot's cluster mode it also serves the app's listen() from the
// sockets pilot bound (PILOT_LISTEN_ADDRS), reports listening and
// process.send('ready') to pilot, and drains on SIGTERM (see doc.go).
//
// Rules it keeps, because it runs inside somebody else's app:
//   - it never prints, never throws, and never keeps the app alive (every
//     timer and the socket are unref'd); it adds a process listener
//     (SIGTERM) only in a process given inherited sockets, whose SIGTERM
//     it must turn into a drain;
//   - it removes its own environment (and its NODE_OPTIONS entry) from
//     process.env before the app runs, so the app's child processes do not
//     load it and the app sees the environment it was given;
//   - it runs on the main thread only (workers preload it too).
(function pilotNodeAgent() {
  try {
    var G = Symbol.for('pilot.nodejs.agent');
    if (globalThis[G]) return;
    globalThis[G] = true;

    var env = process.env;
    var sockPath = env.PILOT_NODE_AGENT_SOCKET;
    var token = env.PILOT_NODE_AGENT_TOKEN;
    var opt = env.PILOT_NODE_AGENT_OPTION;
    // Scrub first, whatever happens next.
    try {
      if (typeof opt === 'string' && opt !== '' && typeof env.NODE_OPTIONS === 'string') {
        var no = env.NODE_OPTIONS;
        if (no === opt) {
          delete env.NODE_OPTIONS;
        } else if (no.slice(-(opt.length + 1)) === ' ' + opt) {
          env.NODE_OPTIONS = no.slice(0, no.length - opt.length - 1);
        }
      }
      delete env.PILOT_NODE_AGENT_SOCKET;
      delete env.PILOT_NODE_AGENT_TOKEN;
      delete env.PILOT_NODE_AGENT_OPTION;
    } catch (e) { /* never crash the app */ }

    if (!sockPath || !token) return;
    var wt;
    try { wt = require('worker_threads'); } catch (e) { wt = null; }
    if (wt && !wt.isMainThread) return;

    var net = require('net');
    var perf = require('perf_hooks');
    var v8 = null;
    try { v8 = require('v8'); } catch (e) { v8 = null; }

    var INTERVAL_MS = 1000;
    // Upper bounds of the GC histogram, in seconds: the same list as
    // gcBuckets in metrics.go (a test holds them equal).
    var LE = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

    // Event-loop delay from perf_hooks.monitorEventLoopDelay, reset after
    // each report. Its values are the intervals between its timer's runs,
    // so RES is taken off to leave the delay. After a reset the histogram
    // records nothing until its timer has run once, so a block that begins
    // just after a report (or ends just before one) would be lost: what the
    // recorded samples do not account for in the wall time since the reset,
    // beyond one timer interval at each end, is counted as one more sample.
    var RES_MS = 10;
    var RES = RES_MS * 1e6; // ns
    var eld = null;
    var eldSince = 0;
    var lagCount = 0; // cumulative, for the summary's _count and _sum
    var lagSum = 0;
    try {
      if (typeof perf.monitorEventLoopDelay === 'function') {
        eld = perf.monitorEventLoopDelay({ resolution: RES_MS });
        eld.enable();
        eldSince = perf.performance.now();
      }
    } catch (e) { eld = null; }
    function lag() {
      var now = perf.performance.now();
      var n = eld.count || 0;
      var recorded = n > 0 ? eld.mean * n : 0; // ns between its first and last run
      var unaccounted = (now - eldSince) * 1e6 - recorded - 2 * RES;
      var p50 = n > 0 ? Math.max(0, eld.percentile(50) - RES) : 0;
      var p99 = n > 0 ? Math.max(0, eld.percentile(99) - RES) : 0;
      var max = n > 0 ? Math.max(0, eld.max - RES) : 0;
      var sum = n > 0 ? Math.max(0, recorded - n * RES) : 0;
      if (unaccounted > RES) {
        n++;
        sum += unaccounted;
        if (unaccounted > max) max = unaccounted;
        if (n <= 100 && unaccounted > p99) p99 = unaccounted; // p99 of ≤100 samples is the top one
        if (n <= 2 && unaccounted > p50) p50 = unaccounted;
      }
      eld.reset();
      eldSince = now;
      lagCount += n;
      lagSum += sum / 1e9;
      return { p50: p50 / 1e9, p99: p99 / 1e9, max: max / 1e9, count: lagCount, sum: lagSum };
    }

    // GC: cumulative per-kind histograms since the process started.
    var gc = {};
    var C = (perf.constants || {});
    var kinds = {};
    kinds[C.NODE_PERFORMANCE_GC_MAJOR || 4] = 'major';
    kinds[C.NODE_PERFORMANCE_GC_MINOR || 1] = 'minor';
    kinds[C.NODE_PERFORMANCE_GC_INCREMENTAL || 8] = 'incremental';
    kinds[C.NODE_PERFORMANCE_GC_WEAKCB || 16] = 'weakcb';
    function observeGC(kind, seconds) {
      var h = gc[kind];
      if (!h) {
        h = gc[kind] = { count: 0, sum: 0, buckets: [] };
        for (var i = 0; i < LE.length; i++) h.buckets.push(0);
      }
      h.count++;
      h.sum += seconds;
      for (var j = 0; j < LE.length; j++) if (seconds <= LE[j]) h.buckets[j]++;
    }
    var obs = null;
    try {
      obs = new perf.PerformanceObserver(function (list) {
        try {
          var entries = list.getEntries();
          for (var i = 0; i < entries.length; i++) {
            var en = entries[i];
            var k = (en.detail && en.detail.kind !== undefined) ? en.detail.kind : en.kind;
            var name = kinds[k];
            if (name) observeGC(name, en.duration / 1000);
          }
        } catch (e) { /* ignore */ }
      });
      obs.observe({ entryTypes: ['gc'] });
    } catch (e) { /* no GC metrics */ }

    function handles() {
      try {
        if (typeof process._getActiveHandles === 'function') return process._getActiveHandles().length;
        if (typeof process.getActiveResourcesInfo === 'function') return process.getActiveResourcesInfo().length;
      } catch (e) { /* ignore */ }
      return -1;
    }

    function report() {
      var r = { type: 'report' };
      try {
        if (eld) r.lag = lag();
      } catch (e) { /* ignore */ }
      try {
        var m = process.memoryUsage();
        r.heap = { used: m.heapUsed, total: m.heapTotal };
      } catch (e) { /* ignore */ }
      r.handles = handles();
      r.gc = gc;
      return r;
    }

    var sock = null;
    var connected = false;
    var stopped = false;
    var backoff = INTERVAL_MS;
    var retryTimer = null;

    function send(obj) {
      if (!sock || !connected) return;
      try {
        // Drop a report rather than buffer without bound behind a stuck peer.
        if (sock.writableLength > 65536) return;
        sock.write(JSON.stringify(obj) + '\n');
      } catch (e) { /* ignore */ }
    }

    function retry() {
      if (stopped || retryTimer) return;
      try {
        retryTimer = setTimeout(function () { retryTimer = null; connect(); }, backoff);
        retryTimer.unref();
      } catch (e) { /* give up quietly */ }
      backoff = Math.min(backoff * 2, 30000);
    }

    function connect() {
      if (stopped) return;
      try {
        var s = net.createConnection({ path: sockPath });
        sock = s;
        connected = false;
        s.unref();
        s.setEncoding('utf8');
        var inbuf = '';
        s.on('connect', function () {
          try {
            connected = true;
            backoff = INTERVAL_MS;
            send({ type: 'hello', v: 1, token: token, pid: process.pid, instance: instanceOf(), node: process.version, le: LE });
            sendState();
          } catch (e) { /* ignore */ }
        });
        s.on('data', function (d) {
          try {
            inbuf += d;
            if (inbuf.length > 65536) inbuf = '';
            var nl;
            while ((nl = inbuf.indexOf('\n')) >= 0) {
              var line = inbuf.slice(0, nl);
              inbuf = inbuf.slice(nl + 1);
              var msg = JSON.parse(line);
              // pilot refused this process (not the job's own): stop for good.
              if (msg && msg.type === 'reject') stopped = true;
            }
          } catch (e) { /* ignore */ }
        });
        s.on('error', function () { /* swallowed; 'close' follows */ });
        s.on('close', function () {
          try {
            if (sock === s) { sock = null; connected = false; }
            retry();
          } catch (e) { /* ignore */ }
        });
      } catch (e) {
        sock = null;
        retry();
      }
    }

    // ---- Cluster mode: inherited sockets, readiness, draining ----------
    //
    // pilot may bind a job's sockets itself and hand them to every instance
    // as fds 3, 4, … (systemd's convention: LISTEN_FDS, LISTEN_PID) with
    // PILOT_LISTEN_ADDRS naming their addresses in fd order. An unchanged
    // app still calls listen(3000): the patch below turns that into a listen
    // on the inherited fd, so that several instances share one socket and a
    // rolling reload never leaves the port unbound.
    var fs = require('fs');
    var held = inheritedSockets();
    var listeningFds = []; // inherited fds a server of this process listens on
    var ready = false;

    function instanceOf() {
      var s = env.PILOT_INSTANCE;
      return (typeof s === 'string' && /^[0-9]{1,9}$/.test(s)) ? Number(s) : -1;
    }

    // [{fd, host, port, used}] from PILOT_LISTEN_ADDRS, or null. The
    // environment is systemd's: it is for LISTEN_PID only (a child that
    // inherits it must not take the sockets), LISTEN_FDS must cover every
    // address, and each fd must be a socket (never wrap an fd that is not
    // the one pilot passed).
    function inheritedSockets() {
      try {
        var raw = env.PILOT_LISTEN_ADDRS;
        if (!raw) return null;
        if (env.LISTEN_PID && Number(env.LISTEN_PID) !== process.pid) return null;
        var n = Number(env.LISTEN_FDS);
        var addrs = JSON.parse(raw);
        if (!Array.isArray(addrs) || !(n >= addrs.length)) return null;
        var out = [];
        for (var i = 0; i < addrs.length; i++) {
          var a = addrs[i];
          var c = typeof a === 'string' ? a.lastIndexOf(':') : -1;
          if (c < 0) continue;
          var port = toPort(a.slice(c + 1));
          if (port === null) continue;
          try { if (!fs.fstatSync(3 + i).isSocket()) continue; } catch (e) { continue; }
          out.push({ fd: 3 + i, host: normHost(a.slice(0, c)), port: port, used: false });
        }
        return out.length ? out : null;
      } catch (e) { return null; }
    }

    function toPort(v) {
      if (typeof v === 'string' && /^[0-9]{1,5}$/.test(v)) v = Number(v);
      return (typeof v === 'number' && v % 1 === 0 && v > 0 && v < 65536) ? v : null;
    }
    function normHost(h) {
      if (h === undefined || h === null) return '';
      h = String(h).toLowerCase();
      if (h.charAt(0) === '[' && h.charAt(h.length - 1) === ']') h = h.slice(1, -1);
      return h;
    }
    function wildcard(h) { return h === '' || h === '0.0.0.0' || h === '::'; }
    function loopback(h) { return h === '::1' || /^127\./.test(h); }
    // The host rule: a listen takes a held socket of its port when the
    // hosts are equal, when pilot's socket is a wildcard (it already takes
    // every address of that port), when the app names no host or a
    // wildcard (the app asks for "this port"; pilot's config decides
    // where), or when the app asks for localhost and pilot's socket is on a
    // loopback address. Anything else (another specific address) is the
    // app's own listen.
    function hostMatches(heldHost, want) {
      return want === heldHost || wildcard(heldHost) || wildcard(want) ||
        (want === 'localhost' && loopback(heldHost));
    }
    // The held socket a listen(args) should take, or null. An fd is given
    // to one server only: once taken it is that server's (closing the
    // server closes this process's copy), and a second listen on the same
    // port goes to Node as it is, failing as it would without pilot.
    function pick(args) {
      var a0 = args[0];
      var port;
      var host;
      if (a0 !== null && typeof a0 === 'object') {
        if (typeof a0.fd === 'number') { // listen({fd}) or a handle object
          for (var k = 0; k < held.length; k++) if (held[k].fd === a0.fd && !held[k].used) return { s: held[k], own: true };
          return null;
        }
        if (a0.path !== undefined && a0.path !== null) return null;
        if (a0._handle || a0.handle) return null;
        port = toPort(a0.port);
        host = normHost(a0.host);
      } else {
        port = toPort(a0);
        host = typeof args[1] === 'string' ? normHost(args[1]) : '';
      }
      if (port === null) return null;
      var best = null;
      for (var i = 0; i < held.length; i++) {
        var s = held[i];
        if (s.used || s.port !== port || !hostMatches(s.host, host)) continue;
        if (s.host === host) return { s: s };
        if (!best) best = { s: s };
      }
      return best;
    }
    function backlogOf(args) {
      if (args[0] !== null && typeof args[0] === 'object') return args[0].backlog;
      for (var i = 1; i < args.length; i++) if (typeof args[i] === 'number') return args[i];
      return undefined;
    }

    if (held) {
      var origListen = net.Server.prototype.listen;
      net.Server.prototype.listen = function listen() {
        var args = Array.prototype.slice.call(arguments);
        var p = null;
        try { p = pick(args); } catch (e) { p = null; }
        if (!p) return origListen.apply(this, args);
        var cb = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
        var opts = { fd: p.s.fd };
        var backlog = backlogOf(args);
        if (typeof backlog === 'number') opts.backlog = backlog;
        var ret = cb ? origListen.call(this, opts, cb) : origListen.call(this, opts);
        // Past a synchronous throw (already listening…): the fd is this server's.
        p.s.used = true;
        try { track(this, p.s.fd); } catch (e) { /* ignore */ }
        return ret;
      };
    }

    // Readiness, PM2's way: the app calls process.send('ready'). Every
    // message still goes to the original send when there is an IPC channel
    // ('ready' too: a parent may wait for it); without one, process.send
    // is defined so that the call never throws. It is defined only for
    // pilot's cluster jobs (PILOT_INSTANCE or inherited sockets): other
    // apps may test process.send to learn whether they have a parent.
    var origSend = typeof process.send === 'function' ? process.send : null;
    if (origSend || held || instanceOf() >= 0) {
      process.send = function send(msg) {
        try {
          if (msg === 'ready' && !ready) { ready = true; sendEvent({ type: 'ready' }); }
        } catch (e) { /* ignore */ }
        if (origSend) return origSend.apply(process, arguments);
        var cb = arguments[arguments.length - 1];
        if (arguments.length > 1 && typeof cb === 'function') process.nextTick(cb, null);
        return true;
      };
    }

    // Draining (SIGTERM, in processes with inherited sockets only): see
    // doc.go. The connections of servers on inherited fds, with how many
    // requests each has in flight.
    var S = Symbol('pilot.conn');
    var conns = new Set();
    var liveRes = new Set(); // responses not yet finished
    var servers = [];
    var draining = false;
    var drainStart = 0;
    var sweepTimer = null;
    var graceMs = Number(env.PILOT_DRAIN_GRACE_MS);
    if (!(graceMs >= 0)) graceMs = 1000;

    function track(server, fd) {
      var isHttp = typeof server.closeIdleConnections === 'function'; // http and https servers
      servers.push(server);
      server.once('listening', function () {
        try {
          if (listeningFds.indexOf(fd) < 0) {
            listeningFds.push(fd);
            listeningFds.sort(function (x, y) { return x - y; });
          }
          sendEvent({ type: 'listening', fds: listeningFds.slice() });
        } catch (e) { /* ignore */ }
      });
      server.on('connection', function (sock) {
        try {
          var st = { http: isHttp, inflight: 0, idleSince: Date.now() };
          sock[S] = st;
          conns.add(sock);
          sock.once('close', function () { conns.delete(sock); checkDone(); });
        } catch (e) { /* ignore */ }
      });
      if (!isHttp) return;
      // First in line, so that a handler answering at once still gets
      // Connection: close during a drain.
      server.prependListener('request', function (req, res) {
        try {
          var sock = req.socket;
          var st = sock && (sock[S] || (sock._parent && sock._parent[S]));
          liveRes.add(res);
          if (st) st.inflight++;
          var done = false;
          var end = function () {
            if (done) return;
            done = true;
            liveRes.delete(res);
            if (st) { st.inflight--; st.idleSince = Date.now(); }
          };
          res.once('finish', end);
          res.once('close', end);
          if (draining) lastOnConnection(res);
        } catch (e) { /* ignore */ }
      });
    }

    // The response tells the client to reconnect (to another instance) and
    // ends the connection once it is sent (Node sets _last).
    function lastOnConnection(res) {
      try {
        if (!res.headersSent) {
          res.setHeader('Connection', 'close');
          res.shouldKeepAlive = false;
        }
      } catch (e) { /* ignore */ }
    }

    function noop() {}
    function drain() {
      if (draining) return;
      draining = true;
      drainStart = Date.now();
      for (var i = 0; i < servers.length; i++) {
        var s = servers[i];
        try {
          // Node ≥19's http close() also closes idle keep-alive
          // connections, racing clients that send their next request at
          // once; the sweep below closes idle ones after the grace
          // instead, so the app's own close() must not either.
          if (typeof s.closeIdleConnections === 'function') s.closeIdleConnections = noop;
          // Stop accepting on this process's fd copy only: pilot and the
          // other instances hold the socket, the kernel queues for them.
          if (s.listening) net.Server.prototype.close.call(s);
        } catch (e) { /* ignore */ }
      }
      liveRes.forEach(lastOnConnection);
      sweepTimer = setInterval(sweep, Math.max(10, Math.min(100, graceMs / 4)));
      sweepTimer.unref();
      sweep();
      checkDone();
    }
    // An HTTP connection idle (no request in flight) for graceMs since the
    // drain began is closed: a client may be sending its next request at
    // that moment (the keep-alive race nobody can close), but a client
    // that stays idle would otherwise keep the process forever.
    function sweep() {
      var now = Date.now();
      conns.forEach(function (sock) {
        var st = sock[S];
        if (st && st.http && st.inflight === 0 && now - Math.max(st.idleSince, drainStart) >= graceMs) {
          try { sock.destroy(); } catch (e) { /* ignore */ }
        }
      });
    }
    function checkDone() {
      if (!draining || conns.size > 0) return;
      if (sweepTimer) { clearInterval(sweepTimer); sweepTimer = null; }
      var own = process.listeners('SIGTERM').some(function (l) { return l !== onTerm; });
      if (own) return; // the app's SIGTERM handler decides when to exit
      // Die of the signal as Node's default would (status 143 to a shell).
      process.removeListener('SIGTERM', onTerm);
      process.kill(process.pid, 'SIGTERM');
    }
    function onTerm() {
      try { drain(); } catch (e) {
        // Never leave a process that was told to stop running.
        if (!process.listeners('SIGTERM').some(function (l) { return l !== onTerm; })) {
          process.removeListener('SIGTERM', onTerm);
          process.kill(process.pid, 'SIGTERM');
        }
      }
    }
    if (held) process.on('SIGTERM', onTerm);

    // Events are state: sent when they change and again after each
    // (re)connect, so that none is lost to a connection not yet up.
    function sendEvent(obj) { send(obj); }
    function sendState() {
      if (listeningFds.length) send({ type: 'listening', fds: listeningFds.slice() });
      if (ready) send({ type: 'ready' });
    }

    var tick = setInterval(function () {
      try {
        if (stopped) { clearInterval(tick); if (eld) eld.disable(); if (obs) obs.disconnect(); return; }
        send(report());
      } catch (e) { /* ignore */ }
    }, INTERVAL_MS);
    tick.unref();
    connect();
  } catch (e) {
    /* the agent must never break the app */
  }
})();
