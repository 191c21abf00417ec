// Command kubectl is the Kubernetes client, as k8s.io/kubernetes/cmd/kubectl builds it, for the
// deploy checks (`kubectl auth can-i` against the local kube-apiserver). It wraps the published
// k8s.io/kubectl module because k8s.io/kubernetes itself cannot be `go install`ed directly.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	// Verbosity is parsed before the command is built, as upstream's main does.
	logs.GlogSetter(cmd.GetLogVerbosity(os.Args)) //nolint:errcheck
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
