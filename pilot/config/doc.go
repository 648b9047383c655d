// Package config owns pilot's configuration as the user wrote it: reading
// the file (YAML, JSON or TOML), expanding ${VAR}, decoding it strictly into
// the raw types of config.go, validating it, and filling in defaults. It
// holds no live objects — no processes, clients or sockets; pilot builds
// those from a valid Config.
//
// The flow is Load (or Parse) → Validate → WithDefaults. Every step is a
// pure function of its input and the environment lookup it is given, safe
// to call from any goroutine; nothing here keeps package-level state.
//
// # Errors
//
// Every problem names the path of the value at fault, as in
// "jobs[1].restart.max: must be ≥ 0", and all problems are reported at once,
// one per line, sorted by path. Each is a *FieldError, reachable with
// errors.As. Bad input never panics.
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
// # Why viper is used only for its codecs
//
// viper.ReadConfig lowercases every map key after parsing, and there is no
// option to turn that off. That would turn `env: {NODE_ENV: production}`
// into node_env, a different variable, and would stop "stopTimeout" from
// being told apart from "stoptimeout". So pilot takes the YAML, JSON and
// TOML decoders from viper's codec registry (viper.NewCodecRegistry), which
// are the parsers viper itself uses, and calls them directly, before the
// lowercasing step. The resulting tree keeps every key exactly as written;
// mapstructure then decodes it with exact, case-sensitive key matching, so a
// key in the wrong case is an unknown key, reported with a "did you mean".
// viper's environment binding (AutomaticEnv) is not used either: pilot's
// only environment input is ${VAR} expansion, below.
//
// # Environment expansion
//
// ${VAR} and ${VAR:-default} are expanded in the file text before it is
// parsed, so they work in any value and any format. $$ is a literal $; a $
// not followed by { or $ is left as it is, so `shell: echo $HOME` reaches
// the shell unchanged. An unset ${VAR} without a default is an error, not an
// empty string. Because expansion precedes parsing, it also applies inside
// comments, and an expanded value is parsed as part of the document: a
// value that may hold YAML syntax (": ", "#") belongs in quotes.
package config
