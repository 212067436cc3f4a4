// Command kthena is Kthena's command-line tool; `kthena up` runs the whole
// system on this machine.
package main

import (
	"os"

	"github.com/kthena/kthena/internal/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:], os.Stdout, os.Stderr))
}
