// Command etcd runs the etcd 3.5 server; the tests' control plane and the local
// platform store their state in it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
