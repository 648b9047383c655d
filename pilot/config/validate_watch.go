package config

import "fmt"

func (c *Config) validateWatches(p *problems) {
	jobNames := map[string]bool{}
	jobs := map[string]*Job{}
	for i := range c.Jobs {
		jobNames[c.Jobs[i].Name] = true
		jobs[c.Jobs[i].Name] = &c.Jobs[i]
	}
	for i, w := range c.Watches {
		path := fmt.Sprintf("watches[%d]", i)
		if c.Consul == nil {
			p.add(path, "needs the top-level consul block")
		}
		if w.Service == "" {
			p.add(path+".service", "required")
		}
		nonNegative(p, path+".debounce.min", w.Debounce.Min)
		nonNegative(p, path+".debounce.max", w.Debounce.Max)
		if w.Debounce.Max != 0 && w.Debounce.Min > w.Debounce.Max {
			p.add(path+".debounce.min", "%s exceeds debounce.max %s", formatDuration(w.Debounce.Min), formatDuration(w.Debounce.Max))
		}
		oc := w.OnChange
		if oc.Run == "" && len(oc.Templates) == 0 && oc.Render == nil && oc.Reload == nil {
			p.add(path+".onChange", "set run, templates, render or reload")
		}
		if oc.Run != "" {
			validateRunTarget(p, path+".onChange.run", oc.Run, jobs[oc.Run])
		}
		for k, t := range oc.Templates {
			tp := fmt.Sprintf("%s.onChange.templates[%d]", path, k)
			if t.Source == "" {
				p.add(tp+".source", "required")
			}
			if t.Dest == "" {
				p.add(tp+".dest", "required")
			}
		}
		if r := oc.Render; r != nil {
			if r.Format == "" {
				p.add(path+".onChange.render.format", "required (nginx or traefik)")
			} else {
				oneOf(p, path+".onChange.render.format", r.Format, "nginx", "traefik")
			}
			if r.Dest == "" {
				p.add(path+".onChange.render.dest", "required")
			}
		}
		if r := oc.Reload; r != nil {
			rp := path + ".onChange.reload"
			switch {
			case (r.Job == "") == (len(r.Exec) == 0):
				p.add(rp, "set exactly one of job and exec")
			case r.Job != "" && !jobNames[r.Job]:
				p.add(rp+".job", "unknown job %s", quote(r.Job))
			case len(r.Exec) > 0 && r.Exec[0] == "":
				p.add(rp+".exec[0]", "the command is empty")
			}
			if r.Signal != "" {
				if r.Exec != nil {
					p.add(rp+".signal", "goes with job, not exec")
				} else if _, err := ParseSignal(r.Signal); err != nil {
					p.add(rp+".signal", "%v", err)
				}
			}
			nonNegative(p, rp+".timeout", r.Timeout)
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
	case j.Restart.Policy == "always":
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
