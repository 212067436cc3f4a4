package handlers

import (
	"context"
	"io"
	"net"
)

type connKey struct{}

// ConnContext is for http.Server.ConnContext: it lets the handler reach
// the client's connection to tune how large bodies are received.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// serverBuffer is the most the server may hold of a body in its own
// read buffer (net/http's bufio.Reader).
const serverBuffer = 4 << 10

// minWait is the body size below which waking per segment costs little.
const minWait = 64 << 10

// bodyWaiter reads a body of known length and asks the kernel to wake the
// reader only once the rest of it (less what the server may have
// buffered) has arrived: a 200 KiB prompt then costs one or two wake-ups
// instead of one per TCP segment. The watermark never exceeds what is
// still to come, so a read can always complete.
type bodyWaiter struct {
	r         io.Reader
	remaining int64
	set       func(int) error
	lowat     int
}

func waitForBody(ctx context.Context, r io.Reader, length int64) io.Reader {
	if length < minWait {
		return r
	}
	c, _ := ctx.Value(connKey{}).(net.Conn)
	set := rcvlowat(c)
	if set == nil {
		return r
	}
	w := &bodyWaiter{r: r, remaining: length, set: set, lowat: 1}
	w.adjust()
	return w
}

func (w *bodyWaiter) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.remaining -= int64(n)
	w.adjust()
	return n, err
}

func (w *bodyWaiter) adjust() {
	want := 1
	if w.remaining-serverBuffer >= minWait {
		want = int(min(w.remaining-serverBuffer, 1<<20))
	}
	if want != w.lowat && w.set(want) == nil {
		w.lowat = want
	}
}

// done restores the default watermark for the next request.
func (w *bodyWaiter) done() {
	if w.lowat != 1 {
		_ = w.set(1)
		w.lowat = 1
	}
}
