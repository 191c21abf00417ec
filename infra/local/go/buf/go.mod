// Builds buf for `make tools` (see infra/local/localinfra/tools.py).
module clinical.local/tools/buf

go 1.24

require github.com/bufbuild/buf v1.75.0

tool github.com/bufbuild/buf/cmd/buf
