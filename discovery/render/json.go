package render

import (
	"encoding/json"
)

// jsonSnapshot and jsonInstance fix the JSON shape a job run on change
// reads: lower-case keys, and empty tags and meta as [] and {}, never null,
// so that `jq '.instances[].tags[]'` works on every instance.
type jsonSnapshot struct {
	Service   string         `json:"service"`
	Instances []jsonInstance `json:"instances"`
}

type jsonInstance struct {
	ID       string            `json:"id"`
	Node     string            `json:"node"`
	Address  string            `json:"address"`
	Port     int               `json:"port"`
	HostPort string            `json:"hostPort"`
	Tags     []string          `json:"tags"`
	Meta     map[string]string `json:"meta"`
	Status   string            `json:"status"`
}

// JSON renders s as indented JSON:
//
//	{"service": NAME, "instances": [{"id", "node", "address", "port",
//	 "hostPort", "tags", "meta", "status"}, …]}
//
// in the snapshot's order. The output depends only on s.
func JSON(s Snapshot) ([]byte, error) {
	out := jsonSnapshot{Service: s.Service, Instances: make([]jsonInstance, len(s.Instances))}
	for i, in := range s.Instances {
		ji := jsonInstance{ID: in.ID, Node: in.Node, Address: in.Address, Port: in.Port,
			HostPort: in.HostPort(), Tags: in.Tags, Meta: in.Meta, Status: string(in.Status)}
		if ji.Tags == nil {
			ji.Tags = []string{}
		}
		if ji.Meta == nil {
			ji.Meta = map[string]string{}
		}
		out.Instances[i] = ji
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
