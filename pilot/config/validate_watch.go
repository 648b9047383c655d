package config

import (
	"fmt"
	"maps"
	"slices"

	"github.com/nodepilot/pilot/discovery/render"
	"github.com/nodepilot/pilot/jobs"
)

func (c *Config) validateWatches(p *problems) {
	byName := map[string]*Job{}
	for i := range c.Jobs {
		byName[c.Jobs[i].Name] = &c.Jobs[i]
	}
	namesUncertain := p.jobNamesUncertain(len(c.Jobs))
	for i, w := range c.Watches {
		path := fmt.Sprintf("watches[%d]", i)
		switch w.Discovery {
		case "", DiscoveryConsul:
			if c.Consul == nil {
				p.addAbout([]string{"consul"}, path, "needs the top-level consul block (or discovery: docker)")
			}
			if w.Docker != nil {
				p.add(path+".docker", "goes with discovery: docker")
			}
		case DiscoveryDocker:
			if w.Tag != "" {
				p.add(path+".tag", "goes with discovery: consul (select containers with docker.labels)")
			}
			if w.Datacenter != "" {
				p.add(path+".dc", "goes with discovery: consul")
			}
			if w.Consistency != "" {
				p.add(path+".consistency", "goes with discovery: consul")
			}
			if d := w.Docker; d != nil {
				if d.Port < 0 || d.Port > 65535 {
					p.add(path+".docker.port", "%d out of range 1..65535 (leave it out for the container's only exposed port)", d.Port)
				}
				for _, k := range slices.Sorted(maps.Keys(d.Labels)) {
					if k == "" {
						p.add(path+".docker.labels", "a label name is empty")
					}
				}
			}
		}
		if w.Service == "" {
			p.required(path+".service", "required")
		}
		nonNegative(p, path+".debounce.min", w.Debounce.Min)
		nonNegative(p, path+".debounce.max", w.Debounce.Max)
		if w.Debounce.Max != 0 && w.Debounce.Min > w.Debounce.Max {
			p.add(path+".debounce.min", "%s exceeds debounce.max %s", formatDuration(w.Debounce.Min), formatDuration(w.Debounce.Max))
		}
		oc := w.OnChange
		ocPath := path + ".onChange"
		if oc.Run == "" && len(oc.Templates) == 0 && oc.Render == nil && oc.Reload == nil {
			p.addAbout([]string{ocPath + ".run", ocPath + ".templates", ocPath + ".render", ocPath + ".reload"}, ocPath, "set run, templates, render or reload")
		}
		if oc.Run != "" && (byName[oc.Run] != nil || !namesUncertain) {
			validateRunTarget(p, path+".onChange.run", oc.Run, byName[oc.Run])
		}
		for k, t := range oc.Templates {
			tp := fmt.Sprintf("%s.onChange.templates[%d]", path, k)
			if t.Source == "" {
				p.required(tp+".source", "required")
			}
			if t.Dest == "" {
				p.required(tp+".dest", "required")
			}
		}
		if r := oc.Render; r != nil {
			if r.Format == "" {
				p.required(path+".onChange.render.format", "required (nginx or traefik)")
			}
			if r.Dest == "" {
				p.required(path+".onChange.render.dest", "required")
			}
			if r.Name != "" {
				if err := render.CheckName(r.Name); err != nil {
					p.add(path+".onChange.render.name", "%v", err)
				}
			}
		}
		if r := oc.Reload; r != nil {
			rp := path + ".onChange.reload"
			switch {
			case (r.Job == "") == (len(r.Exec) == 0):
				p.addAbout([]string{rp + ".job", rp + ".exec"}, rp, "set exactly one of job and exec")
			case r.Job != "" && byName[r.Job] == nil && !namesUncertain:
				p.add(rp+".job", "unknown job %s", quote(r.Job))
			case len(r.Exec) > 0 && r.Exec[0] == "":
				p.add(rp+".exec[0]", "the command is empty")
			}
			if r.Signal != 0 && r.Exec != nil {
				p.add(rp+".signal", "goes with job, not exec")
			}
			nonNegative(p, rp+".timeout", r.Timeout)
			notExplicitZero(p, rp+".timeout", r.Timeout, "the default "+formatDuration(DefaultReloadTimeout))
		}
	}
}

// validateRunTarget checks that the job a watch runs on each change is a
// one-shot: it never starts at boot, so it cannot be the main job, be
// periodic, restart always, or be health-checked and registered.
func validateRunTarget(p *problems, path, name string, j *Job) {
	if j == nil {
		p.add(path, "unknown job %s", quote(name))
		return
	}
	why := ""
	switch {
	case j.Main:
		why = "is the main job"
	case j.Every > 0:
		why = "is periodic (every)"
	case j.Restart.Policy == jobs.RestartAlways:
		why = "restarts always"
	case j.Health != nil:
		why = "has a health check"
	case j.Service != nil:
		why = "registers a service"
	}
	if why != "" {
		p.add(path, "job %s %s; a job run on change must be a one-shot", quote(name), why)
	}
}
