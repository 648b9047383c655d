package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// FieldError is one problem in a config, located by the path of the value at
// fault, such as "jobs[1].restart.max", and, where the file tells, by the
// line it was written on. Path is empty for the file as a whole.
type FieldError struct {
	// File is the config file's name; empty for a document read from
	// memory (Parse).
	File string
	// Line is the line of the value at fault, or of the nearest enclosing
	// one that the file holds (a missing key is reported on its parent's
	// line); 0 when unknown.
	Line    int
	Path    string
	Message string
}

// Error spells the problem compiler-style, FILE:LINE: PATH: MESSAGE, which
// editors and CI annotators jump to; the parts that are unknown are left
// out ("line 3: " stands for the line when there is no file name).
func (e *FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File + ":" + strconv.Itoa(e.Line) + ": ")
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// problems collects FieldErrors so that a config reports every fault at once
// rather than one per edit-and-retry cycle. Validation consults it to tell
// a key the file wrote from one it left out, and to keep quiet about values
// that could not be decoded (they are reported already).
type problems struct {
	list []*FieldError
	// written holds the path of every key and list item in the file; nil
	// for a Config built in code, where a zero value means "not set".
	written map[string]bool
	// undecoded are the paths whose values the decoder refused; a problem
	// at or under one of them would only echo that refusal.
	undecoded []string
	// incomplete are the paths of the maps that hold an unknown key: a
	// misspelled key ("comand") is most likely the missing one, so a
	// missing key there is not reported as well.
	incomplete map[string]bool
}

func (p *problems) add(path, format string, args ...any) {
	p.addAbout(nil, path, format, args...)
}

// required adds a problem about a key that is missing (or empty) at path;
// it is dropped where a misspelled key may stand for it.
func (p *problems) required(path, format string, args ...any) {
	p.addAbout([]string{path}, path, format, args...)
}

// addAbout adds a problem at path that is caused by the values at the
// paths in about being missing or wrong (say, a job's exec and shell for
// "one of exec or shell is required"): it is dropped when one of them
// could not be decoded, or its map holds an unknown key, as it would then
// be noise.
func (p *problems) addAbout(about []string, path, format string, args ...any) {
	if p.isUndecoded(path) || slices.ContainsFunc(about, p.isUndecoded) {
		return
	}
	if slices.ContainsFunc(about, func(a string) bool { return p.incomplete[parentPath(a)] }) {
		return
	}
	p.list = append(p.list, &FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

// explicit reports whether the file wrote the key at path, even with an
// empty or zero value: `every: 0s` is explicit, a missing every is not.
func (p *problems) explicit(path string) bool { return p.written[path] }

// isUndecoded reports whether path is, or is inside, a value the decoder
// refused.
func (p *problems) isUndecoded(path string) bool {
	return slices.ContainsFunc(p.undecoded, func(u string) bool { return within(path, u) })
}

// within reports whether path is ancestor itself or lies inside it.
func within(path, ancestor string) bool {
	if ancestor == "" || path == ancestor {
		return true
	}
	rest, ok := strings.CutPrefix(path, ancestor)
	return ok && (rest[0] == '.' || rest[0] == '[')
}

// parentPath strips the last step of a path: jobs[0].name → jobs[0],
// jobs[0] → jobs, jobs[0].env["a.b"] → jobs[0].env, jobs → "".
func parentPath(path string) string {
	if strings.HasSuffix(path, `"]`) {
		if i := strings.LastIndex(path, `["`); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

// sortProblems orders problems as the file reads: by line, then by path
// (jobs[2] before jobs[10]) and message, so that the same input always
// gives the same output even where problems were found in map order.
func sortProblems(list []*FieldError) {
	slices.SortStableFunc(list, func(a, b *FieldError) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		if c := comparePaths(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
}

// joinProblems joins problems into one error, one per line, each still a
// *FieldError for errors.As; nil when there are none.
func joinProblems(list []*FieldError) error {
	if len(list) == 0 {
		return nil
	}
	errs := make([]error, len(list))
	for i, e := range list {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// comparePaths orders paths naturally: runs of digits compare as numbers.
func comparePaths(a, b string) int {
	for a != "" && b != "" {
		da, db := digitPrefix(a), digitPrefix(b)
		if da > 0 && db > 0 {
			if c := compareNumerals(a[:da], b[:db]); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitPrefix(s string) int {
	n := 0
	for n < len(s) && '0' <= s[n] && s[n] <= '9' {
		n++
	}
	return n
}

// compareNumerals compares two decimal numerals of any length.
func compareNumerals(a, b string) int {
	a, b = trimLeadingZeros(a), trimLeadingZeros(b)
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	for i := range len(a) {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

func trimLeadingZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}
