#!/usr/bin/env bash
# scripts/asio_compat.sh - the library against the Asio releases users have, beside Debian's 1.22.
#
#   Asio 1.38.2  builds and runs the node, storage and transport suites (and the headers suite),
#                with -DASIO_NO_DEPRECATED: the library uses nothing newer Asio deprecates
#   Asio 1.30.2  compiles every header on its own (the headers suite)
#
# The Asio header trees come from a third-party folder holding asio-1.30.2/include and
# asio-1.38.2/include (unmodified releases): $RAFT_THIRD_PARTY if set, else ../shared/third_party
# beside the repository. Where it is absent, each step says "skipped" and the script exits 0.
# Build dirs build-asio-VERSION/ under the repository. Ends with one line per release.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

raft_install_deps

third_party=${RAFT_THIRD_PARTY:-$raft_root/../shared/third_party}
summary=()

# check VERSION EXTRA_CPP_ARGS "TARGET..." SUITE...: configures build-asio-VERSION against that
# release, checks the build used it, builds the suites' programs (not the whole project) and runs
# the suites.
check() {
  local version=$1 cpp_args=$2 targets=$3
  shift 3
  local include=$third_party/asio-$version/include
  if [[ ! -f $include/asio.hpp ]]; then
    echo "asio_compat: Asio $version skipped: no $include/asio.hpp (set RAFT_THIRD_PARTY)"
    summary+=("asio $version: skipped (no header tree)")
    return 0
  fi
  local build=$raft_root/build-asio-$version
  # -O0: half of g++'s compile time at -O2; what differs between Asio releases is what compiles
  # and how it behaves, not how it optimizes.
  raft_configure "$build" "-Dasio_include=$include" -Dexamples=false -Dbenchmarks=false \
    -Doptimization=0 -Ddebug=false | grep -E 'Asio: ASIO_VERSION' || true
  meson configure "$build" "-Dcpp_args=$cpp_args" >/dev/null
  local want
  want=$(sed -n 's/^#define ASIO_VERSION \([0-9]*\).*/\1/p' "$include/asio/version.hpp")
  if ! grep -q "ASIO_VERSION $want" "$build/meson-logs/meson-log.txt"; then
    echo "asio_compat: $build did not pick Asio $version (ASIO_VERSION $want)" >&2
    exit 1
  fi
  local args=() s
  for s in "$@"; do args+=(--suite "$s"); done
  # shellcheck disable=SC2086 # one word per target
  ninja -C "$build" $targets
  meson test -C "$build" --no-rebuild --print-errorlogs "${args[@]}"
  summary+=("asio $version (ASIO_VERSION $want): passed suites $*")
}

headers="tests/header_check"
check 1.38.2 -DASIO_NO_DEPRECATED \
  "$headers tests/node_tests tests/storage/storage_tests tests/transport/transport_tests tests/transport/transport_tls_tests" \
  headers node storage transport
check 1.30.2 "" "$headers" headers
printf '%s\n' "${summary[@]}"
