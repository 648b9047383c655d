package config

import (
	"fmt"
	"slices"
	"strings"
)

// validateDependencies checks each job's after: entries and looks for
// cycles, which would leave every job on them waiting forever. firstNamed
// maps a job name to the index of the first job with that name; runOnChange
// holds the names of the jobs that watches run on change.
func validateDependencies(p *problems, jobs []Job, firstNamed map[string]int, runOnChange map[string]bool) {
	namesUncertain := p.jobNamesUncertain(len(jobs))
	waitsOn := make([][]int, len(jobs))
	for i := range jobs {
		job := &jobs[i]
		for k, dep := range job.After {
			path := fmt.Sprintf("jobs[%d].after[%d]", i, k)
			target, known := firstNamed[dep.Job]
			switch {
			case dep.Job == "":
				p.required(path+".job", "required")
			case dep.Job == job.Name:
				p.add(path+".job", "a job cannot wait for itself")
			case !known && !namesUncertain:
				p.add(path+".job", "unknown job %s", quote(dep.Job))
			case known:
				waitsOn[i] = append(waitsOn[i], target)
			}
			switch dep.State {
			case 0:
				p.required(path+".state", "required (one of %s)", strings.Join(dependencyStateNames(), ", "))
			case DependencyHealthy:
				// A job without a check never becomes healthy: waiting
				// for it would wait forever.
				if known && jobs[target].Health == nil && !p.isUndecoded(fmt.Sprintf("jobs[%d].health", target)) {
					p.add(path+".state", "job %s has no health check", quote(dep.Job))
				}
			case DependencyFailed:
				// failed means failed for good, and a job that runs again
				// by design never fails for good: it is idle between runs.
				switch {
				case known && jobs[target].Every > 0:
					p.add(path+".state", "job %s is periodic: it runs again after a failed run and is never failed for good, so this would wait forever", quote(dep.Job))
				case known && runOnChange[dep.Job]:
					p.add(path+".state", "job %s runs on each change of a watch and is never failed for good, so this would wait forever", quote(dep.Job))
				}
			}
		}
	}
	for _, cycle := range dependencyCycles(waitsOn) {
		names := make([]string, 0, len(cycle)+1)
		for _, i := range cycle {
			names = append(names, jobs[i].Name)
		}
		names = append(names, jobs[cycle[0]].Name)
		p.add("jobs", "dependency cycle: %s", strings.Join(names, " → "))
	}
}

// dependencyCycles finds cycles in the waits-on graph (job index → indexes
// of the jobs it waits for) by depth-first search. Each cycle is returned
// once, as job indexes starting from its lowest.
func dependencyCycles(waitsOn [][]int) [][]int {
	const (
		unvisited = iota
		onPath
		finished
	)
	state := make([]int, len(waitsOn))
	var path []int
	var cycles [][]int
	found := map[string]bool{}
	var visit func(int)
	visit = func(v int) {
		state[v] = onPath
		path = append(path, v)
		for _, w := range waitsOn[v] {
			switch state[w] {
			case unvisited:
				visit(w)
			case onPath:
				cycle := rotateToLowest(path[slices.Index(path, w):])
				if key := fmt.Sprint(cycle); !found[key] {
					found[key] = true
					cycles = append(cycles, cycle)
				}
			}
		}
		path = path[:len(path)-1]
		state[v] = finished
	}
	for v := range waitsOn {
		if state[v] == unvisited {
			visit(v)
		}
	}
	return cycles
}

func rotateToLowest(cycle []int) []int {
	lowest := slices.Index(cycle, slices.Min(cycle))
	return slices.Concat(cycle[lowest:], cycle[:lowest])
}
