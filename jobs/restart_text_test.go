package jobs

import "testing"

func TestRestartPolicyText(t *testing.T) {
	for _, p := range []RestartPolicy{RestartNever, RestartOnFailure, RestartAlways} {
		text, err := p.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back RestartPolicy
		if err := back.UnmarshalText(text); err != nil || back != p {
			t.Errorf("%s: got %v, %v", text, back, err)
		}
	}
	var p RestartPolicy
	if err := p.UnmarshalText([]byte("sometimes")); err == nil || err.Error() != `"sometimes" must be one of never, on-failure, always` {
		t.Errorf("got %v", err)
	}
	if _, err := RestartPolicy(9).MarshalText(); err == nil {
		t.Error("RestartPolicy(9) has a name")
	}
}
