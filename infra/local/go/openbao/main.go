// Command openbao builds the OpenBao server (the Vault API) for local development and tests.
//
// OpenBao's main module cannot be installed with `go install module@version`: it has replace
// directives, and its v2 tags lack the /v2 module path. This wrapper requires it at a
// pseudo-version (go.mod) and calls its command-line entry point.
package main

import (
	"os"

	"github.com/openbao/openbao/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
