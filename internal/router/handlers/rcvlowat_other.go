//go:build !linux

package handlers

import "net"

// rcvlowat is only used on Linux, where epoll honours SO_RCVLOWAT.
func rcvlowat(net.Conn) func(int) error { return nil }
