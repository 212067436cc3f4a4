package bench

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync/atomic"

	fileprovider "github.com/kthena/kthena/internal/router/provider/file"
)

// ServeRelayChild stands in for the router: a layer-4 relay that copies
// each client connection to an engine (round robin per connection), with
// no HTTP and no scheduling. Measured in the router's place it gives the
// cost of the extra hop alone, the floor under any proxy's overhead on
// the machine. Same protocol as ServeRouterChild.
func ServeRelayChild(args []string) error {
	var file string
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] == "--endpoints-file" {
			file = args[i+1]
		}
	}
	addrs, err := endpointAddresses(file)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println(ln.Addr())
	var next atomic.Uint64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go relay(c, addrs[next.Add(1)%uint64(len(addrs))])
		}
	}()
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

func relay(c net.Conn, addr string) {
	defer c.Close()
	u, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer u.Close()
	go func() {
		_, _ = io.Copy(u, c)
		_ = u.(*net.TCPConn).CloseWrite()
	}()
	_, _ = io.Copy(c, u)
}

// endpointAddresses reads the engines' addresses from an endpoints file.
func endpointAddresses(file string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	snap, err := fileprovider.Parse(b)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, p := range snap.Pods {
		addrs = append(addrs, net.JoinHostPort(p.IP, strconv.Itoa(int(p.Port))))
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s: no endpoints", file)
	}
	return addrs, nil
}
