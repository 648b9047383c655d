package nodejs

import (
	"bufio"
	"net"
	"testing"
	"time"
)

type testConn struct {
	t  *testing.T
	c  net.Conn
	rd *bufio.Reader
}

func dialAgent(t *testing.T, path string) *testConn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &testConn{t: t, c: c, rd: bufio.NewReader(c)}
}

func (c *testConn) send(line string) {
	c.t.Helper()
	if _, err := c.c.Write([]byte(line + "\n")); err != nil {
		c.t.Fatal(err)
	}
}

func (c *testConn) readLine() string {
	c.t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	s, err := c.rd.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, s)
	}
	return s
}

func (c *testConn) close() { c.c.Close() }
