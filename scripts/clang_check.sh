#!/usr/bin/env bash
# scripts/clang_check.sh - the second compiler's opinion, in about a minute on 2 cores.
#
# Parses and type-checks (clang -fsyntax-only, -Wall -Wextra -Werror, C++20) every header under
# include/raft/ and every C++ source of tests/, examples/ and benchmarks/, without compiling
# code. CI builds and runs everything with g++; this catches what only clang refuses (such as
# a lambda capture clang takes for unused, a structured binding captured by a lambda, which
# clang 14 does not allow, or a [[nodiscard]] result dropped in a test) at a fraction of a full
# clang build's cost. For the full build and test run with clang:
# CXX=clang++-14 BUILD_DIR=build-clang scripts/test.sh.
#
# --libcxx checks against LLVM's standard library (-stdlib=libc++) instead of libstdc++:
# scripts/libcxx_check.sh --syntax-only uses it for an older libc++ than the one it builds with.
# --sources-only leaves the headers out: CI's scripts/strict_headers.sh checks each header alone
# with this clang too, under stricter warnings.
# Environment: CLANGXX picks the compiler (default clang++-14, else clang++). Exit 0 only if
# every file passed; the files that failed are listed.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$raft_root"

stdlib=()
headers=true
while (($#)); do
  case $1 in
    --libcxx) stdlib=(-stdlib=libc++); shift ;;
    --sources-only) headers=false; shift ;;
    *) echo "usage: scripts/clang_check.sh [--libcxx] [--sources-only]" >&2; exit 2 ;;
  esac
done

raft_pick_clang
if ! command -v "$CLANGXX" >/dev/null; then
  echo "clang_check: no $CLANGXX (apt-get install clang-14, or set CLANGXX)" >&2
  exit 1
fi

# Asio 1.22 enables co_await under clang only when told that the standard coroutines exist.
flags=(-std=c++20 -Wall -Wextra -Werror -fsyntax-only -Iinclude -DASIO_HAS_CO_AWAIT=1
       -DASIO_HAS_STD_COROUTINE=1 "${stdlib[@]}")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One TU per header, as tests/header_check does with the build's compiler: each header must stand
# alone.
files=()
while $headers && IFS= read -r h; do
  tu="$work/$(echo "${h#include/}" | tr / _).cpp"
  printf '#include "%s"\n' "${h#include/}" >"$tu"
  files+=("$tu")
done < <(find include/raft -name '*.hpp' | sort)

# The sources, less the compile-fail cases (tests/compile_fail/check.sh expects them to fail)
# and micro_bench.cpp when Google Benchmark is not installed (meson skips it then too).
while IFS= read -r f; do
  [[ $f == tests/compile_fail/* && $f != */good_policies.cpp ]] && continue
  [[ $f == */micro_bench.cpp && ! -f /usr/include/benchmark/benchmark.h ]] && continue
  files+=("$f")
done < <(find tests examples benchmarks -name '*.cpp' | sort)

echo "clang_check: $CLANGXX ${stdlib[*]:+${stdlib[*]} }-fsyntax-only on ${#files[@]} files"
# Each file's errors go to stderr in one piece; the names of the failed files to $work/failed.
# shellcheck disable=SC2016 # the inner bash expands them
printf '%s\0' "${files[@]}" |
  xargs -0 -n 1 -P "$(nproc)" bash -c \
    'err=$("$@" 2>&1) || { printf "%s\n" "$err" >&2; echo "FAILED: ${!#}"; }' \
    check "$CLANGXX" "${flags[@]}" >"$work/failed"
if [[ -s $work/failed ]]; then
  cat "$work/failed"
  echo "clang_check: $(wc -l <"$work/failed") of ${#files[@]} files failed" >&2
  exit 1
fi
echo "clang_check: all ${#files[@]} files passed"
