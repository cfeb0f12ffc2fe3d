#!/usr/bin/env bash
# check.sh SOURCE INCLUDE_DIR COMPILER [COMPILER_ARGS...]
#
# Compile-fail harness (run by `meson test`, suite compile_fail). Compiles SOURCE with
#   COMPILER COMPILER_ARGS -std=c++20 -Wall -Wextra -I INCLUDE_DIR -fsyntax-only SOURCE
# and checks the outcome against directives in SOURCE's comment lines:
#   // expect-compile: ok      SOURCE must compile, without any diagnostic (positive control)
#   // expect-first: TEXT      the compile must fail, and its first error must say TEXT: the first
#                              line containing "error:" or one of the 2 lines after it contains
#                              TEXT (fixed string), and that error line is among the first
#                              $first_error_within lines (before it come only the include chain
#                              and the instantiation context)
#   // expect: TEXT            the compile must fail and its diagnostics contain TEXT anywhere
#   // expect-max-lines: N     the diagnostics must be shorter than N lines (default 40): a
#                              concept failure is a short message, not a page of template noise
# Several expect/expect-first lines: every TEXT must appear. A SOURCE with no directive is an
# error, so a new case cannot pass by accident.
set -euo pipefail

if (($# < 3)); then
  sed -n '2,17p' "$0" >&2
  exit 2
fi
src=$1 inc=$2
shift 2
first_error_within=10

mapfile -t expects < <(sed -n 's|^// expect: \(.*\)$|\1|p' "$src")
mapfile -t expects_first < <(sed -n 's|^// expect-first: \(.*\)$|\1|p' "$src")
compile_ok=$(sed -n 's|^// expect-compile: \(.*\)$|\1|p' "$src")
max_lines=$(sed -n 's|^// expect-max-lines: \([0-9][0-9]*\)$|\1|p' "$src" | tail -n 1)
max_lines=${max_lines:-40}

if [[ -z $compile_ok && ${#expects[@]} -eq 0 && ${#expects_first[@]} -eq 0 ]]; then
  echo "FAIL $src: no '// expect: TEXT', '// expect-first: TEXT' or '// expect-compile: ok' directive" >&2
  exit 1
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
set +e
LC_ALL=C "$@" -std=c++20 -Wall -Wextra -fdiagnostics-color=never -I "$inc" -fsyntax-only "$src" \
  >"$out" 2>&1
rc=$?
set -e
lines=$(wc -l <"$out")

show() {
  echo "---- diagnostics ($lines lines, exit $rc): $*" >&2
  cat "$out" >&2
  echo "----" >&2
}

if [[ $compile_ok == ok ]]; then
  if ((rc != 0 || lines != 0)); then
    show "$@"
    echo "FAIL $src: expected to compile cleanly" >&2
    exit 1
  fi
  echo "ok: $src compiles cleanly"
  exit 0
fi

if ((rc == 0)); then
  show "$@"
  echo "FAIL $src: compiled, but it must not" >&2
  exit 1
fi
if ((${#expects_first[@]} > 0)); then
  first_error=$(grep -n -m 1 -F 'error:' "$out" | cut -d: -f1 || true)
  if [[ -z $first_error ]] || ((first_error > first_error_within)); then
    show "$@"
    echo "FAIL $src: the first error is not among the first $first_error_within lines" >&2
    exit 1
  fi
  first_lines=$(sed -n "${first_error},$((first_error + 2))p" "$out")
  for e in "${expects_first[@]}"; do
    if ! grep -qF -- "$e" <<<"$first_lines"; then
      show "$@"
      echo "FAIL $src: the first error (line $first_error and the 2 after it) does not say '$e'" >&2
      exit 1
    fi
  done
fi
for e in "${expects[@]}"; do
  if ! grep -qF -- "$e" "$out"; then
    show "$@"
    echo "FAIL $src: diagnostics do not mention '$e'" >&2
    exit 1
  fi
done
if ((lines >= max_lines)); then
  show "$@"
  echo "FAIL $src: $lines lines of diagnostics, the bound is < $max_lines" >&2
  exit 1
fi
echo "ok: $src fails to compile in $lines lines, naming: ${expects_first[*]} ${expects[*]}"
