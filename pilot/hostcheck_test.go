package pilot

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodepilot/pilot/pilot/config"
)

// hostAs checks as a pilot that runs as uid:gid on a machine with the
// interfaces lo and eth0.
func hostAs(uid, gid int) host {
	return host{euid: uid, egid: gid, interfaces: func() ([]net.Interface, error) {
		return []net.Interface{{Name: "lo"}, {Name: "eth0"}}, nil
	}}
}

func problemLines(problems []*config.FieldError) []string {
	var out []string
	for _, p := range problems {
		out = append(out, p.Error())
	}
	slices.Sort(out)
	return out
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckHostUsers(t *testing.T) {
	cfg := &config.Config{Jobs: []config.Job{
		{Name: "a", User: "root"},
		{Name: "b", User: "0:0"},
		{Name: "c", User: "nosuchuser-pilot"},
		{Name: "d", User: "root:nosuchgroup-pilot"},
		{Name: "e", User: "4242"}, // a uid with no passwd entry runs with gid 0
		{Name: "f"},
	}}
	h := hostAs(0, 0)
	want := []string{
		`jobs[2].user: unknown user "nosuchuser-pilot"`,
		`jobs[3].user: unknown group "nosuchgroup-pilot"`,
	}
	if got := problemLines(h.check(cfg)); !slices.Equal(got, want) {
		t.Errorf("as root:\n got  %q\n want %q", got, want)
	}

	// Not root: switching to another user fails at fork (EPERM, exit
	// 126), so it is said now.
	h = hostAs(1000, 1000)
	want = []string{
		"jobs[0].user: switching to user root needs pilot to run as root (pilot runs as uid 1000)",
		"jobs[1].user: switching to user 0 needs pilot to run as root (pilot runs as uid 1000)",
		`jobs[2].user: unknown user "nosuchuser-pilot"`,
		`jobs[3].user: unknown group "nosuchgroup-pilot"`,
		"jobs[4].user: switching to user 4242 needs pilot to run as root (pilot runs as uid 1000)",
	}
	if got := problemLines(h.check(cfg)); !slices.Equal(got, want) {
		t.Errorf("as uid 1000:\n got  %q\n want %q", got, want)
	}
	// Its own uid, in another group, still needs root.
	h = hostAs(5, 1000)
	cfg = &config.Config{Jobs: []config.Job{{Name: "a", User: "5:0"}, {Name: "b", User: "5:1000"}}}
	want = []string{"jobs[0].user: switching to group 0 needs pilot to run as root (pilot runs as uid 5, gid 1000)"}
	if got := problemLines(h.check(cfg)); !slices.Equal(got, want) {
		t.Errorf("own uid:\n got  %q\n want %q", got, want)
	}
}

func TestCheckHostFiles(t *testing.T) {
	dir := t.TempDir()
	file := write(t, dir, "file", "x")
	good := write(t, dir, "good.tmpl", "{{ range .Instances }}{{ .HostPort }} {{ .Tags | join \",\" }} {{ env \"X\" | default \"y\" }} {{ toJSON . }}{{ end }}\n")
	bad := write(t, dir, "bad.tmpl", "line one\n{{ range .Instances }\n")
	token := write(t, dir, "token", "secret-token\n")
	emptyToken := write(t, dir, "empty-token", " \n")
	notPEM := write(t, dir, "ca.txt", "not a certificate")
	ca, key := selfSigned(t, dir)
	_, otherKey := selfSigned(t, t.TempDir())
	missing := filepath.Join(dir, "missing")

	cfg := &config.Config{
		Consul: &config.Consul{TokenFile: missing, TLS: config.TLS{CAFile: notPEM, CertFile: ca, KeyFile: otherKey}},
		Jobs: []config.Job{
			{Name: "a", Dir: dir, Service: &config.Service{Address: config.Address{Interface: "eth0"}}},
			{Name: "b", Dir: missing, Service: &config.Service{Address: config.Address{Interface: "eth9"}}},
			{Name: "c", Dir: file},
		},
		Watches: []config.Watch{{OnChange: config.OnChange{
			Templates: []config.TemplateFile{
				{Source: good, Dest: filepath.Join(dir, "out.conf")},
				{Source: bad, Dest: filepath.Join(missing, "out.conf")},
				{Source: missing, Dest: filepath.Join(file, "out.conf")},
			},
			Render: &config.RenderFile{Dest: filepath.Join(missing, "backend.conf")},
		}}},
	}
	want := []string{
		"consul.tls.caFile: " + notPEM + " holds no PEM certificate",
		"consul.tls.certFile: " + ca + " with keyFile " + otherKey + ": tls: private key does not match public key",
		"consul.tokenFile: " + missing + ": no such file or directory",
		"jobs[1].dir: " + missing + ": no such file or directory",
		`jobs[1].service.address.interface: no network interface "eth9" on this machine (it has lo, eth0)`,
		"jobs[2].dir: " + file + " is not a directory",
		"watches[0].onChange.render.dest: directory " + missing + ": no such file or directory (pilot writes the file but does not create its directory)",
		"watches[0].onChange.templates[1].dest: directory " + missing + ": no such file or directory (pilot writes the file but does not create its directory)",
		"watches[0].onChange.templates[1].source: template: " + bad + ":2: unexpected \"}\" in operand",
		"watches[0].onChange.templates[2].dest: " + file + " is not a directory",
		"watches[0].onChange.templates[2].source: " + missing + ": no such file or directory",
	}
	h := hostAs(0, 0)
	if got := problemLines(h.check(cfg)); !slices.Equal(got, want) {
		t.Errorf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	// The same files, right.
	cfg.Consul = &config.Consul{TokenFile: token, TLS: config.TLS{CAFile: ca, CertFile: ca, KeyFile: key}}
	cfg.Jobs = cfg.Jobs[:1]
	cfg.Watches[0].OnChange = config.OnChange{Templates: cfg.Watches[0].OnChange.Templates[:1]}
	if got := h.check(cfg); len(got) != 0 {
		t.Errorf("got %q", problemLines(got))
	}
	cfg.Consul = &config.Consul{TokenFile: emptyToken}
	if got := problemLines(h.check(cfg)); !slices.Equal(got, []string{"consul.tokenFile: " + emptyToken + " is empty"}) {
		t.Errorf("empty token: %q", got)
	}
}

// selfSigned writes a self-signed certificate and its key to dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "consul"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = write(t, dir, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = write(t, dir, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	return certFile, keyFile
}
