package config

import "fmt"

func (c *Config) validateWatches(p *problems) {
	jobNames := map[string]bool{}
	for _, j := range c.Jobs {
		jobNames[j.Name] = true
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
		if len(oc.Templates) == 0 && oc.Render == nil && oc.Reload == nil {
			p.add(path+".onChange", "set templates, render or reload")
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
