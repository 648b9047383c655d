package jobs

import (
	"fmt"
	"strings"
)

// restartPolicyNames is the one list of the restart policies' names, as a
// config writes them, indexed by RestartPolicy.
var restartPolicyNames = [...]string{
	RestartNever:     "never",
	RestartOnFailure: "on-failure",
	RestartAlways:    "always",
}

// MarshalText writes the policy's name: never, on-failure or always.
func (p RestartPolicy) MarshalText() ([]byte, error) {
	if int(p) < len(restartPolicyNames) {
		return []byte(restartPolicyNames[p]), nil
	}
	return nil, fmt.Errorf("RestartPolicy(%d) has no name", p)
}

// UnmarshalText reads a policy's name: never, on-failure or always.
func (p *RestartPolicy) UnmarshalText(text []byte) error {
	for i, name := range restartPolicyNames {
		if name == string(text) {
			*p = RestartPolicy(i)
			return nil
		}
	}
	return fmt.Errorf("%q must be one of %s", text, strings.Join(restartPolicyNames[:], ", "))
}
