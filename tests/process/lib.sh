# tests/process/lib.sh - helpers shared by the process tests (sourced, not run).
# shellcheck shell=bash

# require_kv_programs NAME ARG...: the arguments of a process test, KV_SERVER KV_CLIENT; exits 2
# with a message naming the test unless there are two and both are executables.
require_kv_programs() {
  local name=$1 exe
  shift
  if [ $# -ne 2 ]; then
    echo "usage: $name KV_SERVER KV_CLIENT" >&2
    exit 2
  fi
  for exe in "$@"; do
    [ -x "$exe" ] || { echo "$name: $exe is not an executable" >&2; exit 2; }
  done
}

# port_in_use PORT: true when something accepts connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_ports N: prints the first of N consecutive ports in 12000-31999 (below the usual
# ephemeral range) on which nothing listens. The first place tried depends on $$, so tests that
# run at the same time start apart; fails after 20 places.
free_ports() {
  local n=$1 slots base off busy
  slots=$((20000 / n))
  base=$((12000 + ($$ % slots) * n))
  for _ in $(seq 1 20); do
    busy=0
    for ((off = 0; off < n; off++)); do port_in_use $((base + off)) && busy=1; done
    if [ "$busy" -eq 0 ]; then
      echo "$base"
      return 0
    fi
    base=$((12000 + ((base - 12000) / n + 997) % slots * n))
  done
  return 1
}
