#!/usr/bin/env bash
# benchmarks/run_matrix.sh - the standard benchmark matrix: CSV, latency distributions and charts.
#
# Runs build-release/benchmarks/replication_bench (building it first if needed) over
#   payload     64 and 256 bytes
#   proposers   1, 16 and 256 (each keeps exactly one proposal outstanding)
#   setups      local     : local_transport,  1 process,   memory_storage
#               tcp       : tcp_transport,    1 process,   memory_storage
#               tcp-procs : tcp_transport,    3 processes, memory_storage
#               local + file storage, fsync on and off
#               tcp-procs + file storage, fsync on and off
# with 3 nodes, and writes into the output directory (default docs/benchmarks/):
#   matrix.csv             one line per run (the driver's --csv columns, command line included)
#   machine.txt            the machine, compiler, kernel, file system and load of the run
#   summary.md             the matrix as Markdown tables, with ratios to the same-run local baseline
#   latency_cdf.csv        every run's latency distribution (setup, payload, proposers, upper bound
#                          of a histogram bucket in microseconds, fraction of proposals at or below)
#   throughput_64B.png, throughput_256B.png    committed entries/s against proposers
#   latency_cdf_256p.png, latency_cdf_1p.png   latency distribution, 64 B, 256 and 1 proposers
#   cpu_per_million_64B.png                    CPU seconds per million entries against proposers
# Charts are drawn with gnuplot (Debian: gnuplot-nox), installed with apt-get when missing and
# running as root; without it the CSV and the summary are still written.
#
#   benchmarks/run_matrix.sh [--quick] [--out DIR] [--build DIR] [--nodes N]
#                            [--warmup S] [--duration S] [--only REGEX] [--no-charts]
#     --quick      0.5 s warm-up, 1 s window (about 3 minutes in all) instead of 1 s + 3 s
#                  (about 5 minutes)
#     --only RE    run only the setups whose name matches RE (local, tcp, tcp-procs,
#                  local-file-fsync, local-file-nofsync, tcp-procs-file-fsync, tcp-procs-file-nofsync)
#     --charts-only  redraw the charts and the summary from an existing matrix.csv
#   BUILD_DIR=... and TMPDIR=... (where file storage writes) are honoured.
#
# Every run is one process tree of the driver; runs are sequential. On a shared machine the
# absolute figures move with the load: compare within one run of this script (the ratios in
# summary.md), and CPU seconds per million entries rather than entries/s.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$root/docs/benchmarks"
build="${BUILD_DIR:-$root/build-release}"
nodes=3
warmup=1
duration=3
only=""
charts=1
charts_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) warmup=0.5; duration=1; shift ;;
    --out) out="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --nodes) nodes="$2"; shift 2 ;;
    --warmup) warmup="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --no-charts) charts=0; shift ;;
    --charts-only) charts_only=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "run_matrix.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
csv="$out/matrix.csv"
cdf_csv="$out/latency_cdf.csv"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cdf_dir="$work/cdf"

# name | driver options
setups=(
  "local|--transport local"
  "tcp|--transport tcp"
  "tcp-procs|--transport tcp-procs"
  "local-file-fsync|--transport local --storage file --fsync on"
  "local-file-nofsync|--transport local --storage file --fsync off"
  "tcp-procs-file-fsync|--transport tcp-procs --storage file --fsync on"
  "tcp-procs-file-nofsync|--transport tcp-procs --storage file --fsync off"
)
payloads=(64 256)
proposer_counts=(1 16 256)

# ---- the runs ------------------------------------------------------------------------------------
if [ "$charts_only" = 0 ]; then
  bench="$build/benchmarks/replication_bench"
  if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$root" --buildtype=release -Dtests=false
  fi
  ninja -C "$build" benchmarks/replication_bench
  {
    echo "date        : $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit      : $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet 2>/dev/null || echo ' (with local changes)')"
    echo "cpu         : $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) hardware threads"
    echo "memory      : $(free -g | awk '/^Mem:/ { print $2 " GiB" }')"
    echo "kernel      : $(uname -sr)"
    echo "compiler    : $(c++ --version | head -n1)"
    echo "build       : $(meson introspect "$build" --buildoptions 2>/dev/null | python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="buildtype"))' 2>/dev/null || echo '?')"
    echo "file system : $(findmnt -n -T "${TMPDIR:-/tmp}" -o SOURCE,FSTYPE 2>/dev/null | tr -s ' ') (TMPDIR=${TMPDIR:-/tmp})"
    echo "load before : $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "method      : $nodes nodes, warm-up $warmup s, window $duration s, one proposal outstanding per proposer"
  } > "$out/machine.txt"
  cat "$out/machine.txt"

  rm -rf "$cdf_dir"
  mkdir -p "$cdf_dir"
  : > "$csv.tmp"
  failures=0
  total=0
  for payload in "${payloads[@]}"; do
    for proposers in "${proposer_counts[@]}"; do
      for setup in "${setups[@]}"; do
        name="${setup%%|*}"
        opts="${setup#*|}"
        if [ -n "$only" ] && ! [[ "$name" =~ $only ]]; then continue; fi
        total=$((total + 1))
        cdf="$cdf_dir/$name-${payload}B-${proposers}p.txt"
        # shellcheck disable=SC2086
        if line=$("$bench" --nodes "$nodes" --payload "$payload" --proposers "$proposers" \
                    --warmup "$warmup" --duration "$duration" $opts --csv --latency-cdf "$cdf"); then
          header=$(echo "$line" | head -n1)
          row=$(echo "$line" | tail -n1)
          [ -s "$csv.tmp" ] || echo "setup,$header" > "$csv.tmp"
          echo "$name,$row" >> "$csv.tmp"
          echo "$name ${payload}B ${proposers}p: $(printf '%s\n%s\n' "$header" "$row" | awk -F, '
            NR == 1 { for (i = 1; i <= NF; ++i) col[$i] = i; next }
            { print $col["entries_per_s"] " entries/s, p99 " $col["p99_us"] " us, " \
                    $col["cpu_s_per_million"] " CPU s/M, leader changes " $col["leader_changes"] }')"
        else
          failures=$((failures + 1))
          echo "run_matrix.sh: FAILED: $name ${payload}B ${proposers}p" >&2
        fi
      done
    done
  done
  mv "$csv.tmp" "$csv"
  {
    echo "setup,payload,proposers,latency_us,cumulative_fraction"
    for f in "$cdf_dir"/*.txt; do
      [ -e "$f" ] || continue
      base="$(basename "$f" .txt)"         # NAME-PAYLOADB-PROPOSERSp
      proposers="${base##*-}"
      rest="${base%-*}"
      payload="${rest##*-}"
      name="${rest%-*}"
      awk -v s="$name,${payload%B},${proposers%p}" '!/^#/ && NF == 2 { print s "," $1 "," $2 }' "$f"
    done
  } > "$cdf_csv"
  echo "load after  : $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"
  echo "$((total - failures)) of $total runs succeeded; CSV in $csv"
fi

[ -f "$csv" ] || { echo "run_matrix.sh: no $csv" >&2; exit 1; }

# ---- summary.md: the tables, with ratios to the local baseline of the same run -----------------
python3 - "$csv" "$out/summary.md" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
base = {(r["payload"], r["proposers"]): float(r["entries_per_s"]) for r in rows if r["setup"] == "local"}
with open(sys.argv[2], "w") as f:
    f.write("<!-- generated by benchmarks/run_matrix.sh from matrix.csv -->\n")
    for payload in sorted({r["payload"] for r in rows}, key=int):
        f.write(f"\n### {payload}-byte entries\n\n")
        f.write("| setup | proposers | entries/s | x local | p50 us | p99 us | p99.9 us | CPU s / M entries "
                "| CPU cores | kernel share | allocs / entry | entries / fsync | peak RSS MB | leader changes |\n")
        f.write("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
        for r in rows:
            if r["payload"] != payload:
                continue
            b = base.get((r["payload"], r["proposers"]))
            rate = float(r["entries_per_s"])
            ratio = f"{rate / b:.2f}" if b else "-"
            fs = r["entries_per_fsync"] if r["fsync"] == "on" else "-"
            f.write(f"| {r['setup']} | {r['proposers']} | {rate:,.0f} | {ratio} | {r['p50_us']} | {r['p99_us']} "
                    f"| {r['p999_us']} | {r['cpu_s_per_million']} | {float(r['cpu_cores']):.2f} "
                    f"| {100 * float(r['kernel_cpu_share']):.0f}% | {r['allocations_per_entry']} | {fs} "
                    f"| {r['peak_rss_mb']} | {r['leader_changes']} |\n")
EOF
echo "summary in $out/summary.md"

# ---- charts ----------------------------------------------------------------------------------------
[ "$charts" = 1 ] || exit 0
if ! command -v gnuplot > /dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    echo "installing gnuplot-nox"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox) > /dev/null
  fi
fi
if ! command -v gnuplot > /dev/null; then
  echo "run_matrix.sh: gnuplot not found (apt-get install gnuplot-nox): no charts" >&2
  exit 0
fi

data="$work/data"
mkdir -p "$data"
names=()
for setup in "${setups[@]}"; do names+=("${setup%%|*}"); done
# Per setup and payload: "proposers entries_per_s cpu_s_per_million"
for name in "${names[@]}"; do
  for payload in "${payloads[@]}"; do
    awk -F, -v n="$name" -v p="$payload" '
      NR == 1 { for (i = 1; i <= NF; ++i) col[$i] = i; next }
      $col["setup"] == n && $col["payload"] == p {
        print $col["proposers"], $col["entries_per_s"], $col["cpu_s_per_million"]
      }' "$csv" | sort -n > "$data/$name-$payload.dat"
  done
done

style='set terminal pngcairo size 960,600 font "sans,11"
set grid
set key outside right top
set style line 1 lw 2 pt 7 lc rgb "#1f77b4"
set style line 2 lw 2 pt 5 lc rgb "#ff7f0e"
set style line 3 lw 2 pt 9 lc rgb "#2ca02c"
set style line 4 lw 2 pt 11 lc rgb "#d62728" dt 2
set style line 5 lw 2 pt 13 lc rgb "#9467bd" dt 2
set style line 6 lw 2 pt 7 lc rgb "#8c564b" dt 4
set style line 7 lw 2 pt 5 lc rgb "#e377c2" dt 4'

plot_lines() {  # $1 = suffix of the .dat files, $2 = column
  local first=1 i=0 cmd="plot"
  for name in "${names[@]}"; do
    i=$((i + 1))
    local f="$data/$name-$1.dat"
    [ -s "$f" ] || continue
    [ "$first" = 1 ] || cmd+=","
    cmd+=" '$f' using 1:$2 with linespoints ls $i title '$name'"
    first=0
  done
  echo "$cmd"
}

for payload in "${payloads[@]}"; do
  gnuplot <<EOF
$style
set output "$out/throughput_${payload}B.png"
set title "Committed entries/s, $nodes nodes, ${payload}-byte entries (each proposer: one proposal outstanding)"
set xlabel "proposers"
set ylabel "committed entries/s"
set logscale xy
set xtics (1, 16, 256)
set format y "%.0s%c"
$(plot_lines "$payload" 2)
EOF
done

gnuplot <<EOF
$style
set output "$out/cpu_per_million_64B.png"
set title "CPU seconds per million committed entries (all processes), $nodes nodes, 64-byte entries"
set xlabel "proposers"
set ylabel "CPU s per million entries"
set logscale xy
set xtics (1, 16, 256)
$(plot_lines 64 3)
EOF

for proposers in 256 1; do
  cmd="plot"
  first=1
  i=0
  for name in "${names[@]}"; do
    i=$((i + 1))
    f="$data/cdf-$name-${proposers}p.dat"
    awk -F, -v n="$name" -v p="$proposers" '$1 == n && $2 == 64 && $3 == p { print $4, $5 }' \
      "$cdf_csv" > "$f"
    [ -s "$f" ] || continue
    [ "$first" = 1 ] || cmd+=","
    cmd+=" '$f' using 1:(\$2*100) with lines ls $i title '$name'"
    first=0
  done
  [ "$first" = 0 ] || continue
  gnuplot <<EOF
$style
set output "$out/latency_cdf_${proposers}p.png"
set title "Latency from async_propose() to applied on the leader: distribution, $nodes nodes, 64 B, $proposers proposer(s)"
set xlabel "latency (microseconds)"
set ylabel "% of proposals at or below"
set logscale x
set yrange [0:100]
set key outside right bottom
$cmd
EOF
done
echo "charts in $out/"
