#!/usr/bin/env bash
# scripts/tsan.sh - the tests that use threads, under ThreadSanitizer, in their own build dir
# (build-tsan/, or $BUILD_DIR), with g++ (or $CXX).
#
# What runs (everything where two threads touch the library's objects):
#   node_threaded_tests  tests/node/test_local_transport.cpp alone (not all of node_tests):
#                   "nodes on separate threads ...": local_transport, three nodes, three threads
#   storage_tests   every file_storage test and the conformance suite: the storage's writer
#                   thread, group commit, flush completion posted back to the caller's executor
#   transport_tests every tcp_transport test (sockets, a cluster in one process) and the codec
#   replication_bench  a multi-threaded io_context: 3 nodes, each on its own strand of one
#                   io_context run by 2 threads (--threads 2), with local_transport and memory
#                   storage, then tcp_transport with file_storage; --check fails the run on a
#                   leader change or a failed proposal
# Any TSan report fails the run (halt_on_error=1, exitcode 66). No suppressions are used.
#
#   scripts/tsan.sh [--quick]     --quick: skip replication_bench
# Environment: CXX (default g++), BUILD_DIR, TSAN_OPTIONS (added to the defaults), RAFT_JOBS=N
# (ninja -j N).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

quick=0
[[ ${1:-} == --quick ]] && quick=1

raft_install_deps
build=${BUILD_DIR:-$raft_root/build-tsan}
start=$SECONDS
# -O1: TSan's own recommendation (fast enough, exact stacks). -g1: line tables, which is all a
# report's stacks use (full -g costs a third more compile time). Examples are not threaded.
# ASIO_DISABLE_FENCED_BLOCK: Asio brackets every handler call with std::atomic_thread_fence
# (detail/std_fenced_block.hpp). TSan does not model stand-alone fences (GCC refuses to compile
# them under -fsanitize=thread: -Werror=tsan), and they are redundant here: a handler crosses
# threads only through the scheduler's mutex, which TSan does see. On x86-64 these acquire and
# release fences emit no instruction (they only stop the compiler reordering), so the program
# tested is the one that ships. Nothing else is changed or suppressed.
benchmarks=true
((quick)) && benchmarks=false
raft_configure "$build" -Db_sanitize=thread -Db_lundef=false -Doptimization=1 -Ddebug=false \
  -Dexamples=false -Dbenchmarks=$benchmarks -Dcompile_checks=false >/dev/null
# (set apart: `meson setup --reconfigure` of meson 1.0 keeps an existing build dir's cpp_args)
meson configure "$build" "-Dcpp_args=['-DASIO_DISABLE_FENCED_BLOCK','-g1']" >/dev/null
targets=(tests/node_threaded_tests tests/storage/storage_tests tests/transport/transport_tests)
((quick)) || targets+=(benchmarks/replication_bench)
ninja ${RAFT_JOBS:+-j "$RAFT_JOBS"} -C "$build" "${targets[@]}"
built=$SECONDS

# halt_on_error: the first report fails the test; second_deadlock_stack: full lock-order reports.
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 history_size=4 ${TSAN_OPTIONS:-}"

failed=0
run() {
  local name=$1
  shift
  local t0=$SECONDS
  echo "==== $name"
  if "$@"; then
    echo "---- $name: no race reported ($((SECONDS - t0)) s)"
  else
    echo "---- $name: FAILED (status $?)"
    failed=1
  fi
}

run "node: local_transport, threaded" "$build/tests/node_threaded_tests"
run "storage: file_storage and conformance" "$build/tests/storage/storage_tests"
run "transport: tcp_transport and codec" "$build/tests/transport/transport_tests"
if ((!quick)); then
  bench=$build/benchmarks/replication_bench
  run "replication_bench: 2-thread io_context, strands, local_transport, memory storage" \
    "$bench" --threads 2 --transport local --storage memory --proposers 32 --warmup 0.5 --duration 2 \
    --election-ms 300 --heartbeat-ms 50 --check
  run "replication_bench: 2-thread io_context, strands, tcp_transport, file_storage" \
    "$bench" --threads 2 --transport tcp --storage file --fsync off --proposers 32 --warmup 0.5 \
    --duration 2 --election-ms 300 --heartbeat-ms 50 --check
fi

echo "==== tsan: build $((built - start)) s, tests $((SECONDS - built)) s: $([[ $failed == 0 ]] && echo 'no data race reported' || echo FAILED)"
exit "$failed"
