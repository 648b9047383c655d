package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Each testdata/invalid-*.yaml lists the errors it must produce in its
// "# want: LINE: PATH: MESSAGE" comments, in order (the file's name is left
// out).
func TestInvalidExamples(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid-*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatal("no invalid examples", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for line := range strings.Lines(string(data)) {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					want = append(want, strings.TrimSuffix(w, "\n"))
				}
			}
			_, err = Load(path, Options{Env: noEnv})
			got := lines(err)
			for i := range got {
				got[i] = strings.TrimPrefix(got[i], path+":") // Load names the file
				got[i] = strings.TrimPrefix(got[i], " ")
			}
			if !slices.Equal(got, want) {
				t.Errorf("errors:\n  got  %q\n  want %q", got, want)
			}
		})
	}
}
