package render

import (
	"encoding/json"
	"testing"
)

func TestJSONGolden(t *testing.T) {
	for _, name := range []string{"empty", "three", "ipv6"} {
		t.Run(name, func(t *testing.T) {
			got, err := JSON(snapshots[name])
			if err != nil {
				t.Fatal(err)
			}
			var back struct {
				Service   string `json:"service"`
				Instances []struct {
					HostPort string            `json:"hostPort"`
					Tags     []string          `json:"tags"`
					Meta     map[string]string `json:"meta"`
				} `json:"instances"`
			}
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, got)
			}
			if back.Instances == nil || len(back.Instances) != len(snapshots[name].Instances) {
				t.Fatalf("instances: got %d (nil %v)", len(back.Instances), back.Instances == nil)
			}
			golden(t, "json-"+name, got)
		})
	}
}

func TestJSONEmptyTagsAndMetaAreNotNull(t *testing.T) {
	got, err := JSON(Snapshot{Service: "s", Instances: []Instance{{ID: "a", Address: "10.0.0.1", Port: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Instances []map[string]any `json:"instances"`
	}
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if back.Instances[0]["tags"] == nil || back.Instances[0]["meta"] == nil {
		t.Fatalf("tags or meta null:\n%s", got)
	}
}
