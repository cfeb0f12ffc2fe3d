#!/usr/bin/env bash
# scripts/fuzz.sh [--time SECONDS] [--only NAME[,NAME...]] [--coverage] [--regen-corpus]
#
# Builds the libFuzzer harnesses of tests/fuzz/ with clang (-fsanitize=fuzzer,address,undefined)
# in their own build dir (build-fuzz/, or $BUILD_DIR) and runs each for a bounded time:
#   codec          the wire codec (raft/transport/codec.hpp)
#   file_storage   file_storage recovery from arbitrary and damaged directories
#   shared_log     shared_log crash recovery from arbitrary and damaged segments
#   node           one node fed arbitrary messages by peers the fuzzer plays
#   cluster        a simulated cluster under a fault schedule the fuzzer writes
#
#   --time S         seconds per harness (default 45; soak with e.g. 3600; 0: build only, no
#                    fuzzing, e.g. with --coverage to measure what the corpus reaches)
#   --only A,B       run only these harnesses
#   --coverage       afterwards, build the harnesses for source coverage (build-fuzz-cov/) and
#                    report, per harness, the lines of include/raft/ its corpus reaches
#   --regen-corpus   rewrite the seed corpus tests/fuzz/corpus/ with tests/fuzz/make_corpus.cpp
#                    and exit
#
# Each harness starts from the seed corpus in the repository (tests/fuzz/corpus/<name>/, read
# only), the inputs of fixed findings (tests/fuzz/regressions/<name>/), and the working corpus
# it grew in earlier runs (build-fuzz/corpus/<name>/). As many harnesses run at once as there are
# cores (libFuzzer runs on one). A crash, a failed check, a leak,
# undefined behaviour or a timeout stops that harness; the input is saved under
# build-fuzz/artifacts/<name>/ and the script prints how to replay it. Exit 0 only if no
# harness found anything.
#
# Installs what is missing (Debian/Ubuntu, as root): clang-14, libclang-rt-14-dev (libFuzzer and
# the sanitizer runtimes), llvm-14 (for --coverage), plus what scripts/test.sh needs.
# Environment: CLANGXX picks the compiler (default clang++-14, else clang++); extra libFuzzer
# flags in $FUZZ_FLAGS (e.g. FUZZ_FLAGS=-jobs=2 for more cores); RAFT_JOBS=N limits the build's
# parallelism (ninja -j N).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

seconds=45
only=""
coverage=0
regen=0
while (($#)); do
  case $1 in
    --time) seconds=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --coverage) coverage=1; shift ;;
    --regen-corpus) regen=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $seconds =~ ^[0-9]+$ ]] || { echo "fuzz.sh: --time takes a number of seconds" >&2; exit 2; }

raft_install_deps
raft_pick_clang
rt_missing() {
  local libdir
  libdir=$("$CLANGXX" -print-resource-dir 2>/dev/null)/lib/linux
  [[ ! -f $libdir/libclang_rt.fuzzer-x86_64.a ]]
}
want=()
command -v "$CLANGXX" >/dev/null || want+=(clang-14)
{ ! command -v "$CLANGXX" >/dev/null || rt_missing; } && want+=(libclang-rt-14-dev)
((coverage)) && ! command -v llvm-cov-14 >/dev/null && ! command -v llvm-cov >/dev/null && want+=(llvm-14)
if ((${#want[@]})); then
  raft_install_packages "${want[@]}"
  [[ $CLANGXX == clang++ ]] && command -v clang++-14 >/dev/null && CLANGXX=clang++-14
fi

harnesses=(codec file_storage shared_log node cluster)
if [[ -n $only ]]; then
  IFS=, read -r -a harnesses <<<"$only"
fi
# Per harness: libFuzzer flags. Programs (node, cluster) get their full length at once.
declare -A flags=(
  [codec]="-max_len=4096"
  [file_storage]="-max_len=4096"
  [shared_log]="-max_len=4096"
  [node]="-max_len=2048 -len_control=0"
  [cluster]="-max_len=2048 -len_control=0"
)
for h in "${harnesses[@]}"; do
  [[ -n ${flags[$h]:-} ]] || { echo "fuzz.sh: no harness named '$h' (${!flags[*]})" >&2; exit 2; }
done

build=${BUILD_DIR:-$raft_root/build-fuzz}
# -fsanitize=function (part of undefined) cannot compile C++20 coroutines with clang 14 ("Cannot
# represent a difference across sections"), so it is left out; every other UBSan check is on,
# and any report aborts (-fno-sanitize-recover), which libFuzzer records as a crash.
# -O2 for speed of the runs; -gline-tables-only instead of -g: a crash's stack needs file and
# line, not full debug info, which costs about a third more compile time.
sanitize_args="['-fsanitize=fuzzer-no-link','-fno-sanitize=function','-fno-sanitize-recover=all','-gline-tables-only']"
if [[ ! -f $build/meson-private/coredata.dat ]]; then
  CXX=$CLANGXX meson setup "$build" "$raft_root" -Doptimization=2 -Ddebug=false \
    -Db_sanitize=address,undefined -Db_lundef=false -Dexamples=false -Dbenchmarks=false \
    -Dcompile_checks=false -Dcpp_args="$sanitize_args" >/dev/null
fi

if ((regen)); then
  ninja ${RAFT_JOBS:+-j "$RAFT_JOBS"} -C "$build" tests/fuzz/fuzz_make_corpus
  rm -rf "$raft_root/tests/fuzz/corpus"
  "$build/tests/fuzz/fuzz_make_corpus" "$raft_root/tests/fuzz/corpus"
  exit 0
fi

targets=()
for h in "${harnesses[@]}"; do targets+=("tests/fuzz/fuzz_$h"); done
echo "==== building ${targets[*]} in $build ($CLANGXX)"
ninja ${RAFT_JOBS:+-j "$RAFT_JOBS"} -C "$build" "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

# fuzz_one NAME: runs one harness for $seconds; writes its summary line to
# $build/fuzz-NAME.summary and, if it found something, what to read and how to replay it to
# $build/fuzz-NAME.report. Each harness runs on one core: as many run at once as there are cores.
fuzz_one() {
  local h=$1 work=$build/corpus/$1 artifacts=$build/artifacts/$1 log=$build/fuzz-$1.log rc
  local report=$build/fuzz-$1.report
  mkdir -p "$work" "$artifacts"
  rm -f "$report"
  local seeds=("$raft_root/tests/fuzz/corpus/$h")
  [[ -d $raft_root/tests/fuzz/regressions/$h ]] && seeds+=("$raft_root/tests/fuzz/regressions/$h")
  echo "==== fuzz_$h: $seconds s (log: $log)"
  set +e
  # shellcheck disable=SC2086 # flags are words
  timeout -k 30 $((seconds + 120)) "$build/tests/fuzz/fuzz_$h" ${flags[$h]} ${FUZZ_FLAGS:-} \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2560 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$work" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  set -e
  local done_line execs rate cov
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/edges \1, features \2, corpus \3/p' <<<"$done_line")
  if ((rc == 0)); then
    echo "fuzz_$h: ok: ${execs:-?} runs, ${rate:-?}/s, ${cov:-coverage ?}" >"$build/fuzz-$h.summary"
    return 0
  fi
  local artifact
  artifact=$(sed -n "s/.*Test unit written to \(.*\)$/\1/p" "$log" | tail -n 1)
  echo "fuzz_$h: FAILED (status $rc) after ${execs:-?} runs${artifact:+; input: $artifact}" >"$build/fuzz-$h.summary"
  {
    echo "---- fuzz_$h found a problem:"
    grep -m 8 -E 'FUZZ CHECK FAILED|Assertion|ERROR:|runtime error:|SUMMARY:|WARNING:' "$log" || true
    echo "---- the end of its log ($log):"
    grep -v '^#[0-9]' "$log" | tail -n 40
    if [[ -n $artifact ]]; then
      echo "---- replay it with:"
      echo "  $build/tests/fuzz/fuzz_$h $artifact"
      echo "or without libFuzzer, with any build (FUZZ_TRACE=1 prints a trace of the node or cluster harness):"
      echo "  ninja -C build tests/fuzz/fuzz_${h}_replay && build/tests/fuzz/fuzz_${h}_replay $artifact"
    fi
  } >"$report"
}

found=0
summary=()
if ((seconds > 0)); then
  running=0
  for h in "${harnesses[@]}"; do
    rm -f "$build/fuzz-$h.summary"
    if ((running >= $(nproc))); then
      wait -n
      running=$((running - 1))
    fi
    fuzz_one "$h" &
    running=$((running + 1))
  done
  wait
  for h in "${harnesses[@]}"; do
    if [[ -f $build/fuzz-$h.report ]]; then cat "$build/fuzz-$h.report"; fi
    line=$(cat "$build/fuzz-$h.summary" 2>/dev/null || echo "fuzz_$h: FAILED (the run left no summary)")
    [[ $line == *": ok: "* ]] || found=1
    summary+=("$line")
  done
fi

if ((coverage)); then
  cov_build=$raft_root/build-fuzz-cov
  if [[ ! -f $cov_build/meson-private/coredata.dat ]]; then
    CXX=$CLANGXX meson setup "$cov_build" "$raft_root" -Dbuildtype=debug -Dexamples=false -Dbenchmarks=false \
      -Dcpp_args="['-fprofile-instr-generate','-fcoverage-mapping']" \
      -Dcpp_link_args="['-fprofile-instr-generate']" >/dev/null
  fi
  targets=()
  for h in "${harnesses[@]}"; do targets+=("tests/fuzz/fuzz_${h}_replay"); done
  ninja ${RAFT_JOBS:+-j "$RAFT_JOBS"} -C "$cov_build" "${targets[@]}"
  llvm_cov=$(command -v llvm-cov-14 || command -v llvm-cov)
  llvm_profdata=$(command -v llvm-profdata-14 || command -v llvm-profdata)
  for h in "${harnesses[@]}"; do
    bin=$cov_build/tests/fuzz/fuzz_${h}_replay
    rm -f "$cov_build"/fuzz-"$h"-*.profraw
    LLVM_PROFILE_FILE="$cov_build/fuzz-$h-%p.profraw" "$bin" "$raft_root/tests/fuzz/corpus/$h" \
      $([[ -d $build/corpus/$h ]] && echo "$build/corpus/$h") >/dev/null 2>&1 || true
    "$llvm_profdata" merge -sparse "$cov_build"/fuzz-"$h"-*.profraw -o "$cov_build/fuzz-$h.profdata"
    echo "==== coverage of include/raft/ by the fuzz_$h corpus (lines)"
    # Columns: Filename, Regions (3), Functions (3), Lines (total, missed, cover), Branches (3).
    "$llvm_cov" report "$bin" -instr-profile="$cov_build/fuzz-$h.profdata" 2>/dev/null |
      awk '$1 ~ /^include\/raft\// && $8 > 0 { printf "  %-44s %7s of %5s lines\n", $1, $10, $8;
                                                  total += $8; missed += $9 }
           END { if (total) printf "  %-44s %6.2f%% of %5d lines\n", "include/raft/ (files reached)",
                                   100 * (total - missed) / total, total }'
  done
fi

if ((seconds > 0)); then
  echo "==== fuzz summary ($seconds s per harness)"
  printf '  %s\n' "${summary[@]}"
fi
exit "$found"
