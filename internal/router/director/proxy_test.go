package director

import (
	"io"
	"net"
	"strings"
	"testing"
)

type recordConn struct {
	net.Conn
	writes []string
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

func TestUpstreamConnReadFrom(t *testing.T) {
	segs := func() [][]byte { return [][]byte{[]byte(`{"model":`), []byte(`"real"`), []byte(`,"prompt":"p"}`)} }

	rc := &recordConn{}
	lr := &io.LimitedReader{R: &segReader{segs: segs()}, N: 29}
	n, err := upstreamConn{rc}.ReadFrom(lr)
	if err != nil || n != 29 || lr.N != 0 {
		t.Fatalf("n=%d err=%v left=%d", n, err, lr.N)
	}
	if got := strings.Join(rc.writes, "|"); got != `{"model":|"real"|,"prompt":"p"}` {
		t.Fatalf("writes %q", got)
	}

	rc = &recordConn{}
	lr = &io.LimitedReader{R: &segReader{segs: segs()}, N: 12}
	if n, _ := (upstreamConn{rc}).ReadFrom(lr); n != 12 || strings.Join(rc.writes, "") != `{"model":"re` {
		t.Fatalf("limited copy wrote %d bytes: %q", n, rc.writes)
	}

	rc = &recordConn{}
	if n, err := (upstreamConn{rc}).ReadFrom(strings.NewReader("plain body")); n != 10 || err != nil || strings.Join(rc.writes, "") != "plain body" {
		t.Fatalf("fallback copy: n=%d err=%v writes %q", n, err, rc.writes)
	}
}
