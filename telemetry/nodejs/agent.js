'use strict';
// pilot's Node.js runtime agent, preloaded with NODE_OPTIONS=--require by
// pilot (node.metrics). It reports event-loop delay, heap, GC and handles to
// pilot over a unix socket, one JSON object per line, about once a second.
//
// Rules it keeps, because it runs inside somebody else's app:
//   - it never prints, never throws, never adds process listeners, and
//     never keeps the app alive (every timer and the socket are unref'd);
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
            send({ type: 'hello', v: 1, token: token, pid: process.pid, node: process.version, le: LE });
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
