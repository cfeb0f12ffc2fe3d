#!/usr/bin/env bash
# scripts/demo.sh: installs what is missing (Debian/Ubuntu, as root), builds the examples and
# benchmarks optimized (build dir build-release/, tests off), runs the demo, then a 2-second
# replication benchmark.
# Environment: CXX picks the compiler, BUILD_DIR overrides the build dir.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

raft_install_deps

build=${BUILD_DIR:-$raft_root/build-release}
# werror off: an optimizer's false-positive warning must not stop a demo (tests keep -Werror).
raft_configure "$build" --buildtype=release -Dtests=false -Dexamples=true -Dbenchmarks=true \
  -Dwerror=false
ninja -C "$build"

echo "== examples/demo"
"$build/examples/demo"
echo
echo "== benchmarks/replication_bench --duration 2"
"$build/benchmarks/replication_bench" --duration 2
