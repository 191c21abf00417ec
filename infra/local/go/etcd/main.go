// Command etcd runs the etcd server, the storage of the kube-apiserver that the deploy checks start
// (see infra/local/localinfra/kube.py). etcd's server module has replace directives, so it cannot
// be `go install`ed directly; this wrapper requires it at the release the apiserver is built with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
