package pilot

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodepilot/pilot/discovery/render"
	"github.com/nodepilot/pilot/pilot/config"
)

// CheckHost reports what in cfg this machine cannot provide: users and
// groups that do not exist, a user switch that needs root, directories and
// files that are missing or unreadable, a TLS file that does not parse, a
// network interface that is not there, a template that does not parse.
// Each problem names the path of the value at fault. It reads the machine
// but changes nothing; config.Options.Check runs it in the same pass as
// the config's own checks, so that `pilot validate` and `pilot run` report
// everything at once. It takes a config as written, valid or not.
//
// It does not look for the programs that jobs run: a job's PATH may come
// from its env, and a program may be made by a job that runs before it, so
// a program missing now is no certain fault (a missing one fails at run,
// exit 127, naming it).
func CheckHost(cfg *config.Config) []*config.FieldError {
	h := host{euid: os.Geteuid(), egid: os.Getegid(), interfaces: net.Interfaces}
	return h.check(cfg)
}

// host is what the checks know of the machine beyond its files, injected
// so that tests can be someone other than root.
type host struct {
	euid, egid int
	interfaces func() ([]net.Interface, error)
	problems   []*config.FieldError
}

func (h *host) add(path, format string, args ...any) {
	h.problems = append(h.problems, &config.FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (h *host) check(cfg *config.Config) []*config.FieldError {
	h.problems = nil
	h.checkConsul(cfg.Consul)
	for i, j := range cfg.Jobs {
		path := fmt.Sprintf("jobs[%d]", i)
		h.checkUser(path+".user", j.User)
		if j.Dir != "" {
			h.checkDir(path+".dir", j.Dir)
		}
		if j.Service != nil && j.Service.Address.Interface != "" {
			h.checkInterface(path+".service.address.interface", j.Service.Address.Interface)
		}
	}
	for i, w := range cfg.Watches {
		path := fmt.Sprintf("watches[%d].onChange", i)
		for k, t := range w.OnChange.Templates {
			tp := fmt.Sprintf("%s.templates[%d]", path, k)
			if t.Source != "" {
				h.checkTemplate(tp+".source", t.Source)
			}
			if t.Dest != "" {
				h.checkDestDir(tp+".dest", t.Dest)
			}
		}
		if r := w.OnChange.Render; r != nil && r.Dest != "" {
			h.checkDestDir(path+".render.dest", r.Dest)
		}
	}
	return h.problems
}

// checkUser resolves the user as the job's start will, and says when
// switching to it needs a root pilot: without it the job would fail at
// every start with "operation not permitted" (exit 126).
func (h *host) checkUser(path, spec string) {
	if spec == "" {
		return
	}
	cred, err := resolveUser(spec)
	if err != nil {
		h.add(path, "%v", err)
		return
	}
	if h.euid == 0 {
		return
	}
	name, group, _ := strings.Cut(spec, ":")
	switch {
	case int(cred.Uid) != h.euid:
		h.add(path, "switching to user %s needs pilot to run as root (pilot runs as uid %d)", name, h.euid)
	case int(cred.Gid) != h.egid:
		if group == "" {
			group = fmt.Sprint(cred.Gid)
		}
		h.add(path, "switching to group %s needs pilot to run as root (pilot runs as uid %d, gid %d)", group, h.euid, h.egid)
	}
}

func (h *host) checkDir(path, dir string) { h.checkDirectory(path, dir, "%s: %v") }

// checkDestDir checks that a rendered file's directory exists: pilot
// writes the file there (through a temporary file beside it) but does not
// create directories.
func (h *host) checkDestDir(path, dest string) {
	h.checkDirectory(path, filepath.Dir(dest), "directory %s: %v (pilot writes the file but does not create its directory)")
}

// checkDirectory reports dir missing, unreadable or not a directory;
// missing formats the first two problems from dir and the error.
func (h *host) checkDirectory(path, dir, missing string) {
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		h.add(path, missing, dir, pathError(err))
	case !fi.IsDir():
		h.add(path, "%s is not a directory", dir)
	}
}

func (h *host) checkTemplate(path, source string) {
	src, err := os.ReadFile(source)
	if err != nil {
		h.add(path, "%s: %v", source, pathError(err))
		return
	}
	if err := render.ParseTemplate(source, src); err != nil {
		h.add(path, "%v", err)
	}
}

func (h *host) checkInterface(path, name string) {
	ifaces, err := h.interfaces()
	if err != nil {
		h.add(path, "cannot list the network interfaces: %v", err)
		return
	}
	names := make([]string, len(ifaces))
	for i, ifc := range ifaces {
		if ifc.Name == name {
			return
		}
		names[i] = ifc.Name
	}
	h.add(path, "no network interface %q on this machine (it has %s)", name, strings.Join(names, ", "))
}

// checkConsul reads the files the Consul client will read, so that a
// missing token or certificate is reported now rather than when pilot
// starts. The token itself is never shown.
func (h *host) checkConsul(c *config.Consul) {
	if c == nil {
		return
	}
	if c.TokenFile != "" {
		if b, err := os.ReadFile(c.TokenFile); err != nil {
			h.add("consul.tokenFile", "%s: %v", c.TokenFile, pathError(err))
		} else if strings.TrimSpace(string(b)) == "" {
			h.add("consul.tokenFile", "%s is empty", c.TokenFile)
		}
	}
	if c.TLS.CAFile != "" {
		if b, err := os.ReadFile(c.TLS.CAFile); err != nil {
			h.add("consul.tls.caFile", "%s: %v", c.TLS.CAFile, pathError(err))
		} else if !x509.NewCertPool().AppendCertsFromPEM(b) {
			h.add("consul.tls.caFile", "%s holds no PEM certificate", c.TLS.CAFile)
		}
	}
	var cert, key []byte
	if c.TLS.CertFile != "" {
		var err error
		if cert, err = os.ReadFile(c.TLS.CertFile); err != nil {
			h.add("consul.tls.certFile", "%s: %v", c.TLS.CertFile, pathError(err))
		}
	}
	if c.TLS.KeyFile != "" {
		var err error
		if key, err = os.ReadFile(c.TLS.KeyFile); err != nil {
			h.add("consul.tls.keyFile", "%s: %v", c.TLS.KeyFile, pathError(err))
		}
	}
	if cert != nil && key != nil {
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			h.add("consul.tls.certFile", "%s with keyFile %s: %v", c.TLS.CertFile, c.TLS.KeyFile, err)
		}
	}
}

// pathError drops the operation and path that an *fs.PathError repeats,
// since the message names the file already.
func pathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
