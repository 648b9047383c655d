// Package render turns a discovery snapshot into the files a proxy reads,
// and puts them in place.
//
// What it owns:
//   - Pure renderers: NGINX (an upstream block) and Traefik (a v3
//     file-provider dynamic configuration in YAML), and Template (a user's
//     text/template with join, env, default and toJSON). Each is a function
//     of its arguments only: same snapshot and options, same bytes; no
//     clock, no I/O (Template's env reads the environment unless
//     TemplateOptions.LookupEnv is given). Output is golden-file tested
//     (testdata/*.golden; go test -update rewrites them).
//   - Routable: the pure split of a snapshot into the instances a renderer
//     can write safely and the ones it must leave out (an address that is
//     neither an IP nor a host name, a port out of range), each with why.
//     Callers render Routable's snapshot, so one malformed catalog entry
//     costs that entry, never the whole file; the renderers themselves
//     refuse such an instance rather than write it.
//   - Apply: atomic replacement of one file (temp file in the same
//     directory, fsync, rename, directory fsync), skipped when the bytes are
//     already there, so an unchanged snapshot causes no write and no reload.
//
// What it does not own: choosing which instances are in the snapshot (the
// watcher), coalescing bursts, and reloading the proxy (the onChange
// runner). Renderers never filter or reorder instances; only Routable
// filters, and only for safety.
//
// Concurrency contract: every function is safe for concurrent use and
// starts no goroutines; renderers never modify the snapshot. Apply calls
// for different destinations are independent. Concurrent Apply calls for
// the same destination each leave dest holding one complete content (the
// last rename wins), but both may report changed; callers serialize per
// destination (one onChange runner per dest) to get exact change reports.
package render
