#!/usr/bin/env bash
# scripts/strict_headers.sh - the library under a user's strictest usual warnings, with every
# compiler installed here.
#
# Each public header under include/raft/ (include/raft/testing/ too) alone, and
# tests/header_strict_use.cpp (which instantiates the templates a typical program does), with
# -std=c++20 -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion, type-checked
# (-fsyntax-only) by g++, clang++-14, clang++-16 and clang++-19, each where installed. The headers suite of
# the meson build checks the same with the build's own compiler (test headers); this
# script adds the other compilers in about a minute.
#
# Prints every warning, grouped by compiler and file, and one line per compiler. Exit 0 only if
# no file drew a warning (or an error) from any compiler.
# Environment: STRICT_CXX="g++ clang++-16" picks the compilers (default: those of g++,
# clang++-14, clang++-16, clang++-19 that are installed).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$raft_root"

if [[ -n ${STRICT_CXX:-} ]]; then
  read -ra compilers <<<"$STRICT_CXX"
else
  compilers=()
  for c in g++ clang++-14 clang++-16 clang++-19; do
    if command -v "$c" >/dev/null; then compilers+=("$c"); fi
  done
fi
if ((${#compilers[@]} == 0)); then
  echo "strict_headers: no compiler found (g++, clang++-14, clang++-16, clang++-19)" >&2
  exit 1
fi

# The user's flags. Asio 1.22 sees clang's coroutines only when told (g++ ignores these).
flags=(-std=c++20 -fsyntax-only -Iinclude -Wall -Wextra -Wpedantic -Wshadow -Wconversion
       -Wsign-conversion -fno-diagnostics-color -DASIO_HAS_CO_AWAIT=1 -DASIO_HAS_STD_COROUTINE=1)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One TU per header; raft/transport/tls.hpp only where OpenSSL's headers are (as in meson).
files=() labels=()
while IFS= read -r h; do
  [[ $h == include/raft/transport/tls.hpp && ! -f /usr/include/openssl/ssl.h ]] && continue
  tu="$work/$(echo "${h#include/}" | tr / _).cpp"
  printf '#include "%s"\n' "${h#include/}" >"$tu"
  files+=("$tu")
  labels+=("${h#include/}")
done < <(find include/raft -name '*.hpp' | LC_ALL=C sort)
files+=(tests/header_strict_use.cpp)
labels+=(tests/header_strict_use.cpp)

# check_one INDEX FILE: $STRICT_NOW's diagnostics for FILE to $STRICT_OUT/INDEX.log (empty: clean).
# shellcheck disable=SC2317 # called through xargs
check_one() {
  # shellcheck disable=SC2086 # STRICT_FLAGS is one word per flag
  "$STRICT_NOW" $STRICT_FLAGS "$2" >"$STRICT_OUT/$1.log" 2>&1 || true
}
export -f check_one
export STRICT_FLAGS="${flags[*]}"

failed=0
for cxx in "${compilers[@]}"; do
  export STRICT_NOW=$cxx STRICT_OUT="$work/out-$cxx"
  mkdir -p "$STRICT_OUT"
  for i in "${!files[@]}"; do printf '%s\0%s\0' "$i" "${files[$i]}"; done |
    xargs -0 -n 2 -P "$(nproc)" bash -c 'check_one "$@"' check_one
  dirty=0
  for i in "${!files[@]}"; do
    log="$STRICT_OUT/$i.log"
    [[ -s $log ]] || continue
    dirty=$((dirty + 1))
    echo "== $cxx: ${labels[$i]}"
    # One line per place and warning (file:line:col: warning: text [-Wflag]): a warning in a
    # template is repeated for each instantiation, with the long types cut to 100 characters.
    grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' "$log" |
      awk '{ loc = $1; flag = ($NF ~ /^\[-W/) ? $NF : ""; if (seen[loc flag]++) next
             text = substr($0, length(loc) + 2); sub(/ \[-W[^]]*\]$/, "", text)
             if (length(text) > 100) text = substr(text, 1, 100) "..."
             print loc " " text (flag != "" ? " " flag : "") }' || true
  done
  if ((dirty)); then
    echo "strict_headers: $cxx: $dirty of ${#files[@]} files drew warnings or errors"
    failed=1
  else
    echo "strict_headers: $cxx: all ${#files[@]} files clean"
  fi
done
exit "$failed"
