package handlers

import (
	"net"
	"syscall"
)

// rcvlowat returns a setter of the connection's SO_RCVLOWAT, or nil when
// the connection is not a plain TCP socket.
func rcvlowat(c net.Conn) func(int) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return func(n int) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
		}); err != nil {
			return err
		}
		return serr
	}
}
