package config

import "testing"

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]uint64{
		"512MiB": 512 << 20, "1.5GiB": 3 << 29, "300MB": 300e6, "4096B": 4096, "2 KiB": 2048,
	} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("%q: got %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "512", "MiB", "-1MiB", "0MiB", "1e400GiB", "12XB", "NaNMiB"} {
		if _, err := ParseBytes(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

// A size is parsed as it is decoded, written as a string or not.
func TestMaxMemoryIsParsedOnDecode(t *testing.T) {
	cfg := decodeYAML(t, "jobs: [{maxMemory: 1.5GiB}]")
	if cfg.Jobs[0].MaxMemory != 3<<29 {
		t.Errorf("got %d", cfg.Jobs[0].MaxMemory)
	}
	for _, doc := range []string{`jobs: [{maxMemory: "512"}]`, `jobs: [{maxMemory: 512}]`} {
		_, err := decodeOnly([]byte(doc), "yaml", noEnv)
		assertLines(t, err, `jobs[0].maxMemory: "512" is not a size (use e.g. 512MiB, 1GiB, 300MB)`)
	}
}
