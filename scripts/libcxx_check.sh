#!/usr/bin/env bash
# scripts/libcxx_check.sh [meson test arguments...]
#
# The library, its tests, examples and benchmarks with clang 16 and LLVM's standard library
# (libc++) instead of g++ and libstdc++: configures, builds and runs every suite with
# `meson test`. What this catches that the g++ build does not: a standard header included only
# by accident through another (libc++ includes less), a library facility libc++ 16 lacks, and
# behaviour that differs between the two libraries (every seed must replay the same run).
#
# Installs what is missing (Debian/Ubuntu, as root): the build's packages, and clang-16,
# libc++-16-dev, libc++abi-16-dev. Build dir build-libcxx/ (BUILD_DIR overrides it). Without
# debug info (-Ddebug=false): it is most of the compile time, and nothing here debugs.
# RAFT_SIM_ROTATE is left as it is: unset, the simulation's rotating block of seeds is skipped
# (the plain build's run, scripts/test.sh, has it). Extra arguments go to `meson test`, e.g. `scripts/libcxx_check.sh --suite core`.
# Ends with "tests: N passed, N failed, N skipped"; exits nonzero if the build or a test failed.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

raft_install_deps
raft_install_packages clang-16 libc++-16-dev libc++abi-16-dev

build=${BUILD_DIR:-$raft_root/build-libcxx}
# CXX is read when the build dir is first set up; -stdlib=libc++ goes to compiling and linking.
# meson.build adds what Asio 1.22 needs to see clang's coroutines.
CXX=clang++-16 raft_configure "$build" -Dexamples=true -Dbenchmarks=true -Ddebug=false
# (set apart: `meson setup --reconfigure` of meson 1.0 keeps an existing build dir's cpp_args)
meson configure "$build" -Dcpp_args=-stdlib=libc++ -Dcpp_link_args=-stdlib=libc++ >/dev/null
# A build dir first set up with another compiler keeps it: say so rather than test the wrong one.
if ! grep -q '^ command = clang++-16 ' "$build/build.ninja"; then
  echo "libcxx_check: $build was set up with another compiler; remove it or set BUILD_DIR" >&2
  exit 1
fi
ninja -C "$build"

# Ends with one line in the plain form: "tests: N passed, N failed, N skipped".
raft_meson_test "$build" "$@"
