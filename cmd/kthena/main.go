// Command kthena is Kthena's command-line tool; `kthena up` runs the whole
// system on this machine.
package main

import (
	"os"

	"github.com/kthena/kthena/internal/cli"
)

func main() {
	if err := cli.NewRoot().Execute(); err != nil {
		os.Exit(1)
	}
}
