#!/usr/bin/env bash
# Regenerates the Go code of the plugin contract. The generated files are
# committed, so building tgrunner never needs protoc.
#   apt-get install -y protobuf-compiler
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.10
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.3.0
set -euo pipefail
cd "$(dirname "$0")"
PATH="$PATH:$(go env GOPATH)/bin"
protoc -I . \
  --go_out=. --go_opt=module=github.com/tgrunner/tgrunner/sdk/proto \
  --go-grpc_out=. --go-grpc_opt=module=github.com/tgrunner/tgrunner/sdk/proto \
  tgrunner/plugin/v1/plugin.proto
