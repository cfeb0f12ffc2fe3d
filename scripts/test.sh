#!/usr/bin/env bash
# scripts/test.sh [--sanitize] [meson test arguments...]
#
# Installs what is missing (Debian/Ubuntu, as root), configures, builds and runs the whole test
# suite with `meson test`.
#   (default)     build dir build/, -O2 -g1
#   --sanitize    build dir build-sanitize/, with AddressSanitizer + UndefinedBehaviorSanitizer
# Extra arguments go to `meson test`, e.g. `scripts/test.sh --suite core`.
# Environment: CXX picks the compiler (e.g. CXX=clang++-14), BUILD_DIR overrides the build dir,
# RAFT_SIM_ROTATE (default: the commit) picks the simulation's rotating block of seeds.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sanitize=0
if [[ ${1:-} == --sanitize ]]; then
  sanitize=1
  shift
fi

raft_install_deps

setup_args=()
if ((sanitize)); then
  build=${BUILD_DIR:-$raft_root/build-sanitize}
  # Examples and benchmarks are built (and so checked) by the plain build; not again here, nor
  # the compile-only suites (headers, compile_fail), whose outcome a sanitizer does not change.
  # -O1 -g1: what ASan recommends (-O1), and line tables, which is all a report's stack traces
  # use. ASan + UBSan at -O2 -g was the costliest build of CI (tests/node/test_paper.cpp alone:
  # over 165 s of CPU, against 28 s for the plain build).
  setup_args+=('-Db_sanitize=address,undefined' -Db_lundef=false -Dexamples=false -Dbenchmarks=false
    -Dcompile_checks=false -Doptimization=1 -Ddebug=false)
  cpp_args=-g1
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
else
  build=${BUILD_DIR:-$raft_root/build}
  # -O2 -g1 (line tables: enough for a failure's stack trace) rather than meson's default -O2 -g.
  # Full debug info is a third of g++'s time on this code base (the coroutine frames); set up a
  # build dir of your own to debug.
  setup_args+=(-Ddebug=false)
  cpp_args=-g1
fi

raft_configure "$build" "${setup_args[@]}"
# (set apart: `meson setup --reconfigure` of meson 1.0 keeps an existing build dir's cpp_args)
if [[ -n $cpp_args ]]; then meson configure "$build" -Dcpp_args="$cpp_args" >/dev/null; fi
# The simulation's rotating block of seeds (suite sim) starts at a seed derived from this value:
# by default the commit, so every commit runs seeds no commit ran before.
if [[ -z ${RAFT_SIM_ROTATE:-} ]]; then
  RAFT_SIM_ROTATE=$(git -C "$raft_root" rev-parse HEAD 2>/dev/null || true)
  export RAFT_SIM_ROTATE
fi
ninja -C "$build"

# Ends with one line in the plain form: "tests: N passed, N failed, N skipped".
raft_meson_test "$build" "$@"
