package config

import (
	"strings"
	"testing"
	"time"
)

// expandEnv runs expand on a whole text, with each error on its line.
func expandEnv(text []byte, lookup LookupFunc) ([]byte, error) {
	out, errs := expand(text, lookup, nil)
	if len(errs) > 0 {
		return nil, joinProblems(expansionProblems(errs))
	}
	return out, nil
}

func TestExpandEnv(t *testing.T) {
	vars := env(map[string]string{"HOST": "db", "EMPTY": "", "PRICE": "$5"})
	tests := []struct {
		name, in, want string
		errs           []string
	}{
		{name: "set", in: "a: ${HOST}", want: "a: db"},
		{name: "twice on a line", in: "a: ${HOST}:${HOST}", want: "a: db:db"},
		{name: "set but empty", in: "a: '${EMPTY}'", want: "a: ''"},
		{name: "default when unset", in: "a: ${NOPE:-x y}", want: "a: x y"},
		{name: "default when empty", in: "a: ${EMPTY:-x}", want: "a: x"},
		{name: "value over default", in: "a: ${HOST:-x}", want: "a: db"},
		{name: "empty default", in: "a: '${NOPE:-}'", want: "a: ''"},
		{name: "default keeps colons", in: "a: ${NOPE:-http://h:80}", want: "a: http://h:80"},
		{name: "value is not re-expanded", in: "a: ${PRICE}", want: "a: $5"},
		{name: "dollar dollar", in: "a: $$HOME $${HOST}", want: "a: $HOME ${HOST}"},
		{name: "escape then variable", in: "a: $$${HOST}", want: "a: $db"},
		{name: "lone dollars stay", in: "a: echo $HOME $1 $ $", want: "a: echo $HOME $1 $ $"},
		{name: "no variables", in: "a: b\n", want: "a: b\n"},
		{
			name: "unset", in: "a: 1\nb: ${NOPE}",
			errs: []string{"line 2: environment variable NOPE is not set (use ${NOPE:-default} to give a default)"},
		},
		{name: "empty name", in: "a: ${}", errs: []string{"line 1: empty ${}"}},
		{
			name: "bad name", in: "a: ${1X}",
			errs: []string{"line 1: invalid variable name in ${1X}: it must start with a letter or _ and hold only letters, digits and _"},
		},
		{name: "unterminated", in: "a: ${HOST", errs: []string{"line 1: unterminated ${ (write $${ for a literal ${)"}},
		{name: "no line spanning", in: "a: ${HOST\n}", errs: []string{"line 1: unterminated ${ (write $${ for a literal ${)"}},
		{
			name: "unsupported operator", in: "a: ${HOST:?err}",
			errs: []string{"line 1: unsupported ${HOST:?err}: only ${VAR} and ${VAR:-default} are supported"},
		},
		{
			name: "default without colon", in: "a: ${HOST-x}",
			errs: []string{"line 1: unsupported ${HOST-x}: only ${VAR} and ${VAR:-default} are supported"},
		},
		{name: "nested default", in: "a: ${A:-${B}}", errs: []string{"line 1: ${A:-${B}: a default cannot contain ${"}},
		{
			name: "one error per unterminated line", in: "a: ${A ${B\nb: ${HOST}",
			errs: []string{"line 1: unterminated ${ (write $${ for a literal ${)"},
		},
		{
			name: "every error, with its line", in: "a: ${X}\nb: ok\nc: ${Y} ${",
			errs: []string{
				"line 1: environment variable X is not set (use ${X:-default} to give a default)",
				"line 3: environment variable Y is not set (use ${Y:-default} to give a default)",
				"line 3: unterminated ${ (write $${ for a literal ${)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := expandEnv([]byte(tt.in), vars)
			assertLines(t, err, tt.errs...)
			if err == nil && string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestExpandEnvIsLinear(t *testing.T) {
	line := []byte(strings.Repeat("${", 1<<20))
	start := time.Now()
	if _, err := expandEnv(line, noEnv); err == nil {
		t.Fatal("no error")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("a line of 1M ${ took %v", elapsed)
	}
}

func TestNilLookupIsTheProcessEnvironment(t *testing.T) {
	t.Setenv("PILOT_CONFIG_TEST_NAME", "from-env")
	cfg, err := Parse([]byte("jobs: [{name: ${PILOT_CONFIG_TEST_NAME}, shell: x}]"), "yaml", Options{})
	if err != nil || cfg.Jobs[0].Name != "from-env" {
		t.Errorf("%+v, %v", cfg, err)
	}
}

func TestParseExpandsBeforeDecoding(t *testing.T) {
	doc := "jobs:\n  - name: ${NAME}\n    shell: echo $HOME\n    restart: {max: ${MAX:-3}}\n"
	cfg, err := decodeOnly([]byte(doc), "yaml", env(map[string]string{"NAME": "app"}))
	if err != nil {
		t.Fatal(err)
	}
	job := cfg.Jobs[0]
	if job.Name != "app" || job.Shell != "echo $HOME" || job.Restart.Max == nil || *job.Restart.Max != 3 {
		t.Errorf("got %+v", job)
	}
}
