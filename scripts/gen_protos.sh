#!/usr/bin/env bash
# Regenerates the committed protobuf/gRPC code from protos/. Pinned so that the
# output is reproducible; tests/unit/test_protos.py fails when it would change.
# Usage: scripts/gen_protos.sh [OUT_DIR]   (default: the repository root)
set -euo pipefail
out=$(realpath "${1:-$(dirname "$0")/..}")
cd "$(dirname "$0")/.."
want=1.85.1
have=$(python3 -c 'import grpc_tools, importlib.metadata as m; print(m.version("grpcio-tools"))' 2>/dev/null || true)
if [ "$have" != "$want" ]; then
    echo "gen_protos: needs grpcio-tools==$want (have: ${have:-none}); pip install 'grpcio-tools==$want'" >&2
    exit 2
fi
protos=$(cd protos && find . -name '*.proto' | sort)
(cd protos && python3 -m grpc_tools.protoc -I. --python_out="$out" --pyi_out="$out" \
    --grpc_python_out="$out" $protos)
