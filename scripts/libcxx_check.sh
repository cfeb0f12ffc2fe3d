#!/usr/bin/env bash
# scripts/libcxx_check.sh [--llvm 16|19] [--syntax-only] [meson test arguments...]
#
# The library, its tests and examples with clang and LLVM's standard library (libc++)
# instead of g++ and libstdc++: configures, builds and runs every suite with `meson test`.
# --llvm picks the release (default 19): clang-N with libc++ N. What this catches that the g++
# build does not: a standard header included only by accident through another (libc++ includes
# less), a library facility libc++ lacks, and behaviour that differs between the two libraries
# (every seed must replay the same run).
#
# Installs what is missing (Debian/Ubuntu, as root): the build's packages, and clang-N,
# libc++-N-dev, libc++abi-N-dev. Debian's libc++ packages of different releases conflict: installing
# one release's removes the other's (apt-get does it, and this script says so first), so run the
# releases one after the other, as CI does. Build dir build-libcxx-N/ (BUILD_DIR overrides it).
# Unoptimized and without debug info (-O0, -Ddebug=false): clang's -O2 took three times as long
# to compile (tests/node_tests: 59 s of CPU against 20 s), and nothing here debugs; so the
# simulations run their smaller blocks of seeds (as under sanitizers). How clang's optimizer
# treats the library is the fuzz step's (scripts/fuzz.sh: clang at -O2). Without the simulations'
# mutants (-Dmutants=false): they check the simulations, not the library, and the plain build
# (scripts/test.sh) runs them. Without the benchmarks (-Dbenchmarks=false): their smoke runs fail
# on a change of leader, which real timers and unoptimized code on a busy machine can cause; the
# plain build runs them, and `--syntax-only` and scripts/clang_check.sh type-check them.
# RAFT_SIM_ROTATE is left as it is: unset, the simulation's rotating block of seeds is skipped
# (the plain build's run, scripts/test.sh, has it). Extra arguments go to `meson test`, e.g.
# `scripts/libcxx_check.sh --llvm 16 --suite core`.
# Ends with "tests: N passed, N failed, N skipped"; exits nonzero if the build or a test failed.
#
# --syntax-only builds and runs nothing: clang-N type-checks every header and source against
# libc++ N (scripts/clang_check.sh --libcxx), in about a fifth of the full build's time. CI does
# this for the older release: what an older libc++ lacks (a facility, an include that a newer one
# makes by accident) shows at type-checking, and the run of every suite with libc++ 19 covers how
# libc++ behaves.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

llvm=19
if [[ ${1:-} == --llvm ]]; then
  llvm=${2:?--llvm needs a release number, e.g. --llvm 16}
  shift 2
fi
syntax_only=false
if [[ ${1:-} == --syntax-only ]]; then
  syntax_only=true
  shift
fi

raft_install_deps
for other in /usr/lib/llvm-*/include/c++/v1; do
  [[ -d $other && $other != "/usr/lib/llvm-$llvm/include/c++/v1" ]] || continue
  if [[ ! -d /usr/lib/llvm-$llvm/include/c++/v1 ]]; then
    echo "libcxx_check: installing libc++ $llvm replaces the installed ${other%/include/c++/v1} one (Debian's releases conflict)"
  fi
done
raft_install_packages "clang-$llvm" "libc++-$llvm-dev" "libc++abi-$llvm-dev"
if $syntax_only; then
  CLANGXX=clang++-$llvm exec "$raft_root/scripts/clang_check.sh" --libcxx
fi

build=${BUILD_DIR:-$raft_root/build-libcxx-$llvm}
# CXX is read when the build dir is first set up; -stdlib=libc++ goes to compiling and linking.
# meson.build adds what Asio 1.22 needs to see clang's coroutines.
CXX=clang++-$llvm raft_configure "$build" -Dexamples=true -Dbenchmarks=false -Doptimization=0 -Ddebug=false \
  -Dmutants=false
# (set apart: `meson setup --reconfigure` of meson 1.0 keeps an existing build dir's cpp_args)
meson configure "$build" -Dcpp_args=-stdlib=libc++ -Dcpp_link_args=-stdlib=libc++ >/dev/null
# A build dir first set up with another compiler keeps it: say so rather than test the wrong one.
if ! grep -q "^ command = clang++-$llvm " "$build/build.ninja"; then
  echo "libcxx_check: $build was set up with another compiler; remove it or set BUILD_DIR" >&2
  exit 1
fi
ninja -C "$build"

# Ends with one line in the plain form: "tests: N passed, N failed, N skipped".
raft_meson_test "$build" "$@"
