package discovery

import (
	"strings"
	"testing"
)

func inst(id, addr string, port int) Instance {
	return Instance{ID: id, Node: "n1", Address: addr, Port: port, Status: Passing}
}

func TestNewSnapshotSortsAndCopies(t *testing.T) {
	in := []Instance{
		inst("b", "10.0.0.2", 80),
		inst("a", "10.0.0.9", 80),
		inst("a", "10.0.0.1", 90),
		inst("a", "10.0.0.1", 81),
		{ID: "a", Node: "n0", Address: "10.0.0.1", Port: 81},
	}
	in[1].Tags = []string{"v2", "v1"}
	in[1].Meta = map[string]string{"k": "v"}
	s := NewSnapshot("web", in)
	want := []string{"a/n0/10.0.0.1:81", "a/n1/10.0.0.1:81", "a/n1/10.0.0.1:90", "a/n1/10.0.0.9:80", "b/n1/10.0.0.2:80"}
	if len(s.Instances) != len(want) {
		t.Fatalf("got %d instances", len(s.Instances))
	}
	for i, w := range want {
		if g := s.Instances[i].ID + "/" + s.Instances[i].Node + "/" + s.Instances[i].HostPort(); g != w {
			t.Errorf("instance %d = %s, want %s", i, g, w)
		}
	}
	if got := s.Instances[3].Tags; got[0] != "v1" || got[1] != "v2" {
		t.Errorf("tags not sorted: %v", got)
	}
	// Deep copy: mutating the input does not touch the snapshot.
	in[1].Tags[0], in[1].Meta["k"] = "zz", "changed"
	if s.Instances[3].Tags[1] == "zz" || s.Instances[3].Meta["k"] != "v" {
		t.Errorf("snapshot shares memory with its input: %+v", s.Instances[3])
	}
	if in[1].Tags[1] != "v1" {
		t.Errorf("NewSnapshot sorted the caller's tags in place: %v", in[1].Tags)
	}
}

func TestSnapshotEqual(t *testing.T) {
	base := func() Snapshot {
		a := inst("a", "10.0.0.1", 80)
		a.Tags = []string{"v1", "blue"}
		a.Meta = map[string]string{"version": "1"}
		return NewSnapshot("web", []Instance{inst("b", "10.0.0.2", 80), a})
	}
	// Same content in another order and with the tags shuffled.
	a := inst("a", "10.0.0.1", 80)
	a.Tags = []string{"blue", "v1"}
	a.Meta = map[string]string{"version": "1"}
	if !base().Equal(NewSnapshot("web", []Instance{a, inst("b", "10.0.0.2", 80)})) {
		t.Fatal("same set in another order is not Equal")
	}
	if !NewSnapshot("web", nil).Equal(NewSnapshot("web", []Instance{})) {
		t.Fatal("nil and empty sets differ")
	}
	noMeta := inst("x", "h", 1)
	emptyMeta := inst("x", "h", 1)
	emptyMeta.Meta, emptyMeta.Tags = map[string]string{}, []string{}
	if !NewSnapshot("s", []Instance{noMeta}).Equal(NewSnapshot("s", []Instance{emptyMeta})) {
		t.Fatal("nil and empty tags/meta differ")
	}

	for name, mut := range map[string]func(*Snapshot){
		"service":   func(s *Snapshot) { s.Service = "api" },
		"id":        func(s *Snapshot) { s.Instances[0].ID = "a2" },
		"node":      func(s *Snapshot) { s.Instances[0].Node = "n2" },
		"address":   func(s *Snapshot) { s.Instances[0].Address = "10.0.0.3" },
		"port":      func(s *Snapshot) { s.Instances[0].Port = 81 },
		"status":    func(s *Snapshot) { s.Instances[0].Status = Warning },
		"tag":       func(s *Snapshot) { s.Instances[0].Tags[0] = "green" },
		"tag added": func(s *Snapshot) { s.Instances[0].Tags = append(s.Instances[0].Tags, "z") },
		"meta":      func(s *Snapshot) { s.Instances[0].Meta["version"] = "2" },
		"meta key":  func(s *Snapshot) { s.Instances[0].Meta["other"] = "1" },
		"removed":   func(s *Snapshot) { s.Instances = s.Instances[:1] },
		"added":     func(s *Snapshot) { s.Instances = append(s.Instances, inst("c", "h", 1)) },
		"emptied":   func(s *Snapshot) { s.Instances = nil },
	} {
		t.Run(name, func(t *testing.T) {
			s := base().Clone()
			mut(&s)
			if base().Equal(s) || s.Equal(base()) {
				t.Errorf("change of %s not seen by Equal", name)
			}
			if base().Hash() == s.Hash() {
				t.Errorf("change of %s not seen by Hash", name)
			}
		})
	}
	if base().Hash() != base().Hash() {
		t.Fatal("Hash not stable")
	}
}

func TestSnapshotCloneIsDeep(t *testing.T) {
	a := inst("a", "h", 1)
	a.Tags, a.Meta = []string{"t"}, map[string]string{"k": "v"}
	s := NewSnapshot("web", []Instance{a})
	c := s.Clone()
	c.Instances[0].Tags[0], c.Instances[0].Meta["k"] = "u", "w"
	if s.Instances[0].Tags[0] != "t" || s.Instances[0].Meta["k"] != "v" {
		t.Fatal("Clone shares tags or meta")
	}
}

func TestHostPort(t *testing.T) {
	for _, c := range []struct {
		in   Instance
		want string
	}{
		{inst("a", "10.0.0.1", 80), "10.0.0.1:80"},
		{inst("a", "fd00::1", 443), "[fd00::1]:443"},
		{inst("a", "web.local", 3000), "web.local:3000"},
	} {
		if got := c.in.HostPort(); got != c.want {
			t.Errorf("HostPort(%q) = %q, want %q", c.in.Address, got, c.want)
		}
	}
}

func TestWatchSpecValidate(t *testing.T) {
	if err := (WatchSpec{}).Validate(); err == nil {
		t.Fatal("empty service accepted")
	}
	for _, c := range []Consistency{"", ConsistencyStale, ConsistencyDefault, ConsistencyConsistent} {
		if err := (WatchSpec{Service: "web", Consul: ConsulQuery{Consistency: c}}).Validate(); err != nil {
			t.Fatalf("consistency %q: %v", c, err)
		}
	}
	err := (WatchSpec{Service: "web", Consul: ConsulQuery{Consistency: "strong"}}).Validate()
	if err == nil || !strings.Contains(err.Error(), `"strong"`) {
		t.Fatalf("consistency strong: %v, want an error naming it", err)
	}
}
