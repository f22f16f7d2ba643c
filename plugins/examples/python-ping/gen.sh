#!/usr/bin/env bash
# Regenerates the Python code of the plugin contract. The generated files
# are committed, so running the plugin needs only python3-grpcio and
# python3-protobuf.
#   apt-get install -y protobuf-compiler protobuf-compiler-grpc
set -euo pipefail
cd "$(dirname "$0")"
rm -rf gen && mkdir gen
protoc -I ../../../sdk/proto \
  --python_out=gen \
  --grpc_python_out=gen --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  tgrunner/plugin/v1/plugin.proto
