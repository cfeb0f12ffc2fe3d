#!/usr/bin/env bash
# benchmarks/compile_time.sh - what including raft costs a user's build, against a yardstick.
#
# Compiles, side by side on this machine, with the same compiler and flags (-std=c++20 -O2, the
# project's warnings), alternating so that both see the same load:
#   (a) benchmarks/compile_time/raft_node_tu.cpp  - includes raft/raft.hpp and instantiates one
#       node (start, a co_await propose, stop);
#   (b) benchmarks/compile_time/echo_server.cpp   - a minimal C++20-coroutine TCP echo server on
#       standalone Asio (the yardstick);
# several runs each, and prints the median and the minimum of each and the ratio a/b of the
# medians. Times are CPU seconds of the compiler (user + system), which another program's load on
# a shared machine disturbs much less than wall-clock time; the wall-clock times are printed too.
# The target is a ratio of at most 2.
#
#   benchmarks/compile_time.sh [--runs N] [--check] [--csv FILE] [--against REF] [--instructions]
#                              [--statements]
#     --runs N    compilations of each file (default 5)
#     --against REF  also compile raft_node_tu.cpp against the headers of git revision REF (say
#                 main) and print the ratio new / REF: how a change to the headers moved the
#                 compile time. Each run compiles the TU with the new and with REF's headers at
#                 the same time (one per core), and the ratio is the median of the per-pair
#                 ratios: the speed of a shared VM drifts by 10-30% within minutes, which
#                 compilations one after the other see and a pair does not
#     --instructions  count the instructions the compiler executes instead of timing it
#                 (valgrind's callgrind; the files are compiled at the same time, one per core,
#                 about 7 minutes): the count does not depend on the machine's load, so it
#                 settles a change of 1% that timing on a shared VM cannot. It is not the time:
#                 the node's TU is more memory-bound than the echo server's (at one commit,
#                 2.01x in instructions and 2.14x in CPU time on a quiet day)
#     --statements  count the statements g++ keeps after optimizing each file (the lines of
#                 -fdump-tree-optimized that end in ';': statements and declarations), in
#                 seconds: a deterministic proxy for the code a change makes the compiler
#                 generate, to try changes quickly. It misses the front end (parsing,
#                 instantiation): confirm a change with --instructions. g++ only
#     --check     exit 1 if the ratio of the medians is above 2 (off by default: timing on a
#                 shared machine is noisy, and CI never fails on speed)
#     --csv FILE  also write one line per compilation (file,run,cpu_seconds,wall_seconds; with
#                 --instructions: file,instructions)
#   CXX=clang++-14 benchmarks/compile_time.sh     another compiler
#
# The ratio is the figure to quote: absolute times depend on the machine and its load.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
runs=5
check=0
csv=""
against=""
instructions=0
statements=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --check) check=1; shift ;;
    --csv) csv="$2"; shift 2 ;;
    --against) against="$2"; shift 2 ;;
    --instructions) instructions=1; shift ;;
    --statements) statements=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "compile_time.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

cxx="${CXX:-g++}"
flags=(-std=c++20 -O2 -Wall -Wextra -Werror -pthread -I"$root/include")
if "$cxx" --version 2>/dev/null | grep -qi clang; then
  flags+=(-DASIO_HAS_CO_AWAIT=1 -DASIO_HAS_STD_COROUTINE=1)
fi
raft_tu="$here/compile_time/raft_node_tu.cpp"
echo_tu="$here/compile_time/echo_server.cpp"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# The headers of revision REF, for --against.
ref_flags=()
if [ -n "$against" ]; then
  mkdir -p "$out/ref"
  git -C "$root" archive "$against" include | tar -x -C "$out/ref"
  ref_flags=("${flags[@]/#-I$root\/include/-I$out/ref/include}")
fi

# "CPU WALL": seconds of one compilation (to an object file, as a build does). CPU is user +
# system time of the compiler and its children (cc1plus, as). With --ref, against REF's headers;
# with --ref or --pair, to files of its own (the two of a pair run at the same time).
compile() {
  local TIMEFORMAT='%U %S %R' t f=("${flags[@]}") tag=${2:-one}
  tag=${tag#--}
  if [ "$tag" = ref ]; then f=("${ref_flags[@]}"); fi
  t=$( { time "$cxx" "${f[@]}" -c "$1" -o "$out/$tag.o" 2> "$out/$tag.diag"; } 2>&1 ) || {
    cat "$out/$tag.diag" >&2
    exit 1
  }
  echo "$t" | awk '{ printf "%.3f %.3f\n", $1 + $2, $3 }'
}

# Instructions executed by one compilation (the driver, cc1plus and as, summed), under callgrind.
count() {
  local tag=$1 file=$2
  shift 2
  valgrind --tool=callgrind --cache-sim=no --branch-sim=no --trace-children=yes \
    --callgrind-out-file="$out/cg.$tag.%p" "$cxx" "$@" -c "$file" -o "$out/$tag.o" \
    > "$out/$tag.valgrind" 2>&1 || { cat "$out/$tag.valgrind" >&2; exit 1; }
  cat "$out"/cg."$tag".* | awk '/^summary:/ { n += $2 } END { printf "%.0f\n", n }'
}

# Statements left after optimization in one compilation (see --statements).
statements_of() {
  local tag=$1 file=$2
  shift 2
  "$cxx" "$@" -fdump-tree-optimized="$out/$tag.gimple" -c "$file" -o "$out/$tag.o" 2> "$out/$tag.diag" ||
    { cat "$out/$tag.diag" >&2; exit 1; }
  awk '!/^;;/ && /;[ \t]*$/ { n++ } END { print n + 0 }' "$out/$tag.gimple"
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
minimum() { sort -g | head -n1; }

command -v bc > /dev/null || { echo "compile_time.sh: needs bc (apt-get install bc)" >&2; exit 2; }

if [ "$statements" = 1 ]; then
  s_raft=$(statements_of raft "$raft_tu" "${flags[@]}")
  s_echo=$(statements_of echo "$echo_tu" "${flags[@]}")
  echo "raft_node_tu.cpp: $s_raft statements after optimization"
  echo "echo_server.cpp : $s_echo statements after optimization"
  printf 'ratio raft / echo: %.3f (statements)\n' "$(echo "$s_raft / $s_echo" | bc -l)"
  if [ -n "$against" ]; then
    s_ref=$(statements_of ref "$raft_tu" "${ref_flags[@]}")
    printf 'raft_node_tu.cpp with %s'"'"'s headers: %s statements; ratio new / %s: %.4f\n' \
      "$against" "$s_ref" "$against" "$(echo "$s_raft / $s_ref" | bc -l)"
  fi
  exit 0
fi

if [ "$instructions" = 1 ]; then
  command -v valgrind > /dev/null || { echo "compile_time.sh: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
  echo "compiler: $("$cxx" --version | head -n1)"
  echo "flags   : ${flags[*]}"
  echo "counting instructions under callgrind (several minutes)..."
  count raft "$raft_tu" "${flags[@]}" > "$out/n_raft" &
  p1=$!
  count echo "$echo_tu" "${flags[@]}" > "$out/n_echo" &
  p2=$!
  if [ -n "$against" ]; then count ref "$raft_tu" "${ref_flags[@]}" > "$out/n_ref" & p3=$!; fi
  wait "$p1" || exit 1
  wait "$p2" || exit 1
  [ -n "$against" ] && { wait "$p3" || exit 1; }
  n_raft=$(cat "$out/n_raft")
  n_echo=$(cat "$out/n_echo")
  printf 'raft_node_tu.cpp: %.3f G instructions\necho_server.cpp : %.3f G instructions\n' \
    "$(echo "$n_raft / 10^9" | bc -l)" "$(echo "$n_echo / 10^9" | bc -l)"
  printf 'ratio raft / echo: %.3f (instructions)\n' "$(echo "$n_raft / $n_echo" | bc -l)"
  if [ -n "$against" ]; then
    n_ref=$(cat "$out/n_ref")
    printf 'raft_node_tu.cpp with %s'"'"'s headers: %.3f G instructions; ratio new / %s: %.4f\n' \
      "$against" "$(echo "$n_ref / 10^9" | bc -l)" "$against" "$(echo "$n_raft / $n_ref" | bc -l)"
  fi
  if [ -n "$csv" ]; then
    echo "file,instructions" > "$csv"
    echo "raft_node_tu,$n_raft" >> "$csv"
    echo "echo_server,$n_echo" >> "$csv"
    [ -n "$against" ] && echo "raft_node_tu@$against,$n_ref" >> "$csv"
  fi
  if [ "$check" = 1 ] && [ "$(echo "$n_raft > 2 * $n_echo" | bc -l)" = 1 ]; then
    echo "compile_time.sh: ratio above 2" >&2
    exit 1
  fi
  exit 0
fi

echo "compiler: $("$cxx" --version | head -n1)"
echo "flags   : ${flags[*]}"
echo "machine : $(nproc) hardware threads, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "runs    : $runs of each, alternating"

# One untimed compilation of each first: the headers are then in the page cache for both.
"$cxx" "${flags[@]}" -c "$raft_tu" -o "$out/tu.o"
"$cxx" "${flags[@]}" -c "$echo_tu" -o "$out/tu.o"
[ -n "$against" ] && "$cxx" "${ref_flags[@]}" -c "$raft_tu" -o "$out/tu.o"

: > "$out/raft"
: > "$out/echo"
: > "$out/ref_times"
: > "$out/pair_ratios"
[ -n "$csv" ] && echo "file,run,cpu_seconds,wall_seconds" > "$csv"
for i in $(seq 1 "$runs"); do
  read -r c_echo w_echo < <(compile "$echo_tu")
  read -r c_raft w_raft < <(compile "$raft_tu")
  echo "$c_echo $w_echo" >> "$out/echo"
  echo "$c_raft $w_raft" >> "$out/raft"
  printf '  run %d: raft_node_tu %.2f s CPU (%.2f s wall), echo_server %.2f s CPU (%.2f s wall)' \
    "$i" "$c_raft" "$w_raft" "$c_echo" "$w_echo"
  if [ -n "$against" ]; then
    compile "$raft_tu" --pair > "$out/pair_new" &
    p_new=$!
    compile "$raft_tu" --ref > "$out/pair_ref" &
    p_ref=$!
    wait "$p_new" || exit 1
    wait "$p_ref" || exit 1
    read -r c_new w_new < "$out/pair_new"
    read -r c_ref w_ref < "$out/pair_ref"
    echo "$c_ref $w_ref" >> "$out/ref_times"
    echo "$c_new / $c_ref" | bc -l >> "$out/pair_ratios"
    printf '; at the same time: new %.2f s, %s'"'"'s headers %.2f s CPU' "$c_new" "$against" "$c_ref"
    if [ -n "$csv" ]; then
      echo "raft_node_tu(pair),$i,$c_new,$w_new" >> "$csv"
      echo "raft_node_tu@$against(pair),$i,$c_ref,$w_ref" >> "$csv"
    fi
  fi
  printf '\n'
  if [ -n "$csv" ]; then
    echo "raft_node_tu,$i,$c_raft,$w_raft" >> "$csv"
    echo "echo_server,$i,$c_echo,$w_echo" >> "$csv"
  fi
done

raft_med=$(cut -d' ' -f1 "$out/raft" | median)
echo_med=$(cut -d' ' -f1 "$out/echo" | median)
raft_min=$(cut -d' ' -f1 "$out/raft" | minimum)
echo_min=$(cut -d' ' -f1 "$out/echo" | minimum)
raft_wall=$(cut -d' ' -f2 "$out/raft" | median)
echo_wall=$(cut -d' ' -f2 "$out/echo" | median)
ratio=$(echo "$raft_med / $echo_med" | bc -l)
ratio_min=$(echo "$raft_min / $echo_min" | bc -l)
ratio_wall=$(echo "$raft_wall / $echo_wall" | bc -l)
printf 'raft_node_tu.cpp (raft/raft.hpp + one node): median %.2f s CPU, min %.2f s, median %.2f s wall\n' \
  "$raft_med" "$raft_min" "$raft_wall"
printf 'echo_server.cpp  (Asio coroutine echo)     : median %.2f s CPU, min %.2f s, median %.2f s wall\n' \
  "$echo_med" "$echo_min" "$echo_wall"
printf 'ratio raft / echo: %.2f (CPU medians), %.2f (CPU minimums), %.2f (wall medians); target <= 2\n' \
  "$ratio" "$ratio_min" "$ratio_wall"
if [ -n "$against" ]; then
  ref_med=$(cut -d' ' -f1 "$out/ref_times" | median)
  ref_min=$(cut -d' ' -f1 "$out/ref_times" | minimum)
  printf 'raft_node_tu.cpp with %s'"'"'s headers (in pairs): median %.2f s CPU, min %.2f s\n' \
    "$against" "$ref_med" "$ref_min"
  printf 'ratio new / %s: %.3f (median of %d pairs compiled at the same time)\n' "$against" \
    "$(median < "$out/pair_ratios")" "$runs"
fi
if [ "$check" = 1 ] && [ "$(echo "$ratio > 2" | bc -l)" = 1 ]; then
  echo "compile_time.sh: ratio above 2" >&2
  exit 1
fi
