// Package config owns pilot's configuration as the user wrote it: reading
// the file (YAML, JSON or TOML), expanding ${VAR}, decoding it strictly into
// the raw types of config.go, validating it, and filling in defaults. It
// holds no live objects — no processes, clients or sockets — and reads
// nothing but the config: pilot builds runtime objects from a checked
// Config, and checks what the config asks of the machine itself (users,
// files, interfaces), through Options.Check.
//
// The flow is Load (or Parse) → WithDefaults. Load is the one pass that
// `pilot validate` and `pilot run` share: parse, decode, validate, and
// Options.Check, each step going on past the problems of the one before,
// so that everything that can be known without running is reported at
// once. Validate alone serves a Config built in code. Every step is a pure
// function of its input and the environment lookup it is given, safe to
// call from any goroutine; nothing here keeps package-level state.
//
// # Errors
//
// Every problem is a *FieldError (reachable with errors.As) that names the
// path of the value at fault and, where the file tells, its line; Load
// adds the file. One problem is one line, compiler-style:
//
//	pilot.yaml:12: jobs[1].restart.max: must be ≥ 0
//
// — the form editors, CI annotators and grep -n already read, while the
// path names the value for a reader. Problems are sorted by line, then by
// path. A missing key is reported on the line of the map that lacks it.
// JSON and YAML give the line of every key and list item; TOML gives the
// line of every key, table and array-of-tables entry.
//
// One problem does not hide the next: a value that cannot be decoded is
// reported, then left out, and the rest is decoded and validated. What
// would only echo a reported problem is left out: a value that failed to
// decode is not also "required", a name that failed to decode does not
// make the jobs waiting on it "unknown", and a map with an unknown
// (probably misspelled) key is not also missing the key it meant. Bad
// input never panics; a parser's panic is reported as a problem.
//
// # Strict decoding
//
// Keys match exactly, unknown keys are errors, and values are never
// converted between types: `main: "yes"` is refused, and a duration is a
// string with a unit (`timeout: 5` is refused, not read as 5ns). One
// exception: env values take integers and booleans as their text, because
// `PORT: 3000` (or an unquoted `${PORT:-3000}`) is the common case and its
// text is exactly what was written; floats and dates are still refused, as
// the parser has already changed them (1.10 is 1.1).
//
// Signals, sizes and the names of every enum (restart policy, output
// mode, dependency state, onUnhealthy, render format, metric type,
// readiness) are parsed as they are decoded, by the UnmarshalText of the
// field's type, so a bad one is reported at its path with the rest, and
// pilot builds from the typed value without parsing it again. Each enum's
// names are listed once: in types.go, or in the runtime type the field
// uses (jobs.RestartPolicy, output.Mode, custom.Kind). log.level and
// log.format stay text, since PILOT_LOG_LEVEL and PILOT_LOG_FORMAT
// override them as text; ParseLogLevel and ParseLogFormat read both.
// instances is the one value of two types, a number or "auto", read by
// its own decode hook; a number written as text is taken too, since that
// is what a quoted ${N} gives.
//
// A zero where leaving the key out means a default (`stopTimeout: 0s`,
// `every: 0s`, `health.interval: 0s`) is refused, with what leaving it out
// gives, rather than silently read as the default; a zero that means what
// it says (`restart.max: 0`, `startPeriod: 0s`, `drain: 0s`) is kept. Where
// arithmetic or sense needs a bound there is one: health.interval and
// startPeriod at most a day (the TTL is 3 × interval), backoff.max at most
// a day (the delay doubles up to it), the thresholds at most 100, a
// duration at most 2562047h (beyond it is "out of range", not "not a
// duration"), a port 1–65535, consul.address as the Consul client takes
// it, instances at most 256, a cluster job's readyTimeout at least 1s.
//
// # The file
//
// A file is at most MaxFileSize (1 MiB): a config is a few kilobytes, and
// a far larger file is the wrong one. YAML holds one document: a second
// one after --- is an error on its line (an empty one is ignored).
// Top-level keys starting with "x-" are ignored, as in compose files, to
// hold YAML anchors for the rest to use.
//
// # Why not viper
//
// viper.ReadConfig lowercases every map key after parsing, with no option
// to turn that off: `env: {NODE_ENV: production}` would become node_env, a
// different variable, and "stopTimeout" could not be told from
// "stoptimeout". Its codecs are no more than yaml.v3, encoding/json and
// go-toml, which pilot calls itself: YAML through yaml.v3's node tree,
// which knows the line of every key and lets ${VAR} be expanded in values
// only; JSON and TOML through their own decoders, with a token walk (JSON)
// and go-toml's parser (TOML) for the lines. Every tree keeps each key
// exactly as written; mapstructure then decodes it with exact,
// case-sensitive key matching, so a key in the wrong case is an unknown
// key, reported with a "did you mean". pilot's only environment input is
// ${VAR} expansion, below.
//
// # Environment expansion
//
// ${VAR} and ${VAR:-default} take their value from the environment; $$ is
// a literal $; a $ not followed by { or $ is left as it is, so `shell: echo
// $HOME` reaches the shell unchanged. An unset ${VAR} without a default is
// an error, not an empty string. Every faulty ${…} is reported, on its
// line. Where it applies depends on the format:
//
//   - YAML: in scalar values only, never in keys or comments (`# set
//     ${MY_TOKEN}` is only a comment). The value is expanded after
//     parsing, so it never changes the document's structure, and a plain
//     scalar is typed by its new value: an unquoted `port: ${PORT:-3000}`
//     is the integer 3000, a quoted one the string "3000".
//   - JSON has no comments: ${VAR} is expanded in the text before parsing,
//     so an expanded value is read as JSON text (a quote in it ends the
//     string).
//   - TOML: in the text before parsing, as in JSON, but not in comments, so
//     that an unquoted `port = ${PORT:-3000}` stays the integer it always
//     was; a value that may hold a quote belongs in YAML.
package config
