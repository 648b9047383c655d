package render

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestTemplateGolden(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "upstream.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	three := snapshots["ipv6"]
	three = deepCopy(three)
	three.Instances[1].Meta["weight"] = "5"
	three.Instances[2].Tags = []string{"a", "b"}
	for name, c := range map[string]struct {
		snap Snapshot
		env  map[string]string
	}{
		"three":     {three, map[string]string{"REGION": "eu-1"}},
		"no-region": {snapshots["one"], nil},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := TemplateWith(src, c.snap, TemplateOptions{Name: "upstream.tmpl", LookupEnv: env(c.env)})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "template-"+name, got)
		})
	}
}

func TestTemplateHelpers(t *testing.T) {
	s := Snapshot{Service: "b", Instances: []Instance{{ID: "x", Address: "::1", Port: 80, Tags: []string{"a", "b"}, Meta: map[string]string{"k": "v"}}}}
	for src, want := range map[string]string{
		`{{ range .Instances }}{{ .Tags | join "+" }}{{ end }}`:                  "a+b",
		`{{ join "," (index .Instances 0).Tags }}`:                               "a,b",
		`{{ range .Instances }}{{ .HostPort }}{{ end }}`:                         "[::1]:80",
		`{{ (index .Instances 0).Meta.missing | default "d" }}`:                  "d",
		`{{ (index .Instances 0).Meta.k | default "d" }}`:                        "v",
		`{{ 0 | default 7 }}|{{ 3 | default 7 }}`:                                "7|3",
		`{{ toJSON .Service }}`:                                                  `"b"`,
		`{{ toJSON (index .Instances 0).Tags }}`:                                 `["a","b"]`,
		`{{ env "PILOT_RENDER_TEST_SET" }}|{{ env "PILOT_UNSET" }}`:              "yes|",
		`{{ .Instances | len }} {{ (index .Instances 0).Port | printf "%05d" }}`: "1 00080",
	} {
		got, err := TemplateWith([]byte(src), s, TemplateOptions{LookupEnv: env(map[string]string{"PILOT_RENDER_TEST_SET": "yes"})})
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", src, got, err, want)
		}
	}
}

func TestTemplateEnvDefaultsToProcess(t *testing.T) {
	t.Setenv("PILOT_RENDER_TEST", "from-env")
	got, err := Template([]byte(`{{ env "PILOT_RENDER_TEST" }}`), Snapshot{})
	if err != nil || string(got) != "from-env" {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestTemplateErrorsNameTheLine(t *testing.T) {
	for src, want := range map[string]string{
		"line one\nline two\n{{ nosuchfunc }}\n":                    "upstream.tmpl:3:",
		"a\n{{ range .Instances }}\n":                               "upstream.tmpl:3: unexpected EOF",
		"a\nb\nc\n{{ .NoSuchField }}\n":                             "upstream.tmpl:4:",
		"{{ range .Instances }}\n{{ join \",\" .Port }}{{ end }}\n": "upstream.tmpl:2:",
		"x\n{{ index .Instances 5 }}":                               "upstream.tmpl:2:",
	} {
		out, err := TemplateWith([]byte(src), snapshots["one"], TemplateOptions{Name: "upstream.tmpl"})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want it to name %q", src, err, want)
		}
		if out != nil {
			t.Errorf("%q: partial output %q returned with the error", src, out)
		}
	}
}
