package pilot

// group runs actors together: when the first one returns, the others are
// interrupted one by one in the reverse order of their addition, each waited
// for before the next. The order of teardown is therefore written down in one
// place — the order of the add calls in Run.
type group struct {
	actors []actor
}

type actor struct {
	execute   func() error
	interrupt func()
}

func (g *group) add(execute func() error, interrupt func()) {
	g.actors = append(g.actors, actor{execute, interrupt})
}

// run returns the error of the actor that returned first.
func (g *group) run() error {
	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(g.actors))
	for i, a := range g.actors {
		go func() { results <- result{i, a.execute()} }()
	}
	first := <-results
	finished := map[int]bool{first.i: true}
	for i := len(g.actors) - 1; i >= 0; i-- {
		if finished[i] {
			continue
		}
		g.actors[i].interrupt()
		for !finished[i] {
			r := <-results
			finished[r.i] = true
		}
	}
	return first.err
}
