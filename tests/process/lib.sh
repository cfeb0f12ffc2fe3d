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

# ---- the frame of a process test ------------------------------------------------------------------
# begin_process_test NAME LIMIT GRACE KV_SERVER KV_CLIENT: checks the arguments
# (require_kv_programs), re-runs the test once under timeout(1) (LIMIT seconds, then SIGKILL
# GRACE seconds later), and sets TEST_NAME, SERVER, CLIENT, tmp (a new temporary directory) and
# pid (an empty map: server number -> process id). From then on the test writes each server's
# output to $tmp/server<N>.log and kv_client's stderr to $tmp/client.err, and leaves the rest to
# the EXIT trap, end_process_test.
begin_process_test() {
  local name=$1 limit=$2 grace=$3
  shift 3
  require_kv_programs "$name" "$@"
  if [ -z "${PROCESS_TEST_UNDER_TIMEOUT:-}" ]; then
    PROCESS_TEST_UNDER_TIMEOUT=1 exec timeout -k "$grace" "$limit" bash "$0" "$@"
  fi
  TEST_NAME=$name
  SERVER=$1
  # shellcheck disable=SC2034  # used by the test that sources this file
  CLIENT=$2
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
  declare -gA pid=()
  trap end_process_test EXIT
  trap 'exit 124' INT TERM
}

# end_process_test (the EXIT trap): kills what still runs (first whatever the test's own
# stop_helpers function stops, if it has one, then every server in pid); if the test failed,
# shows the end of every server log and of kv_client's stderr; removes $tmp; exits with the
# test's status.
end_process_test() {
  local rc=$? i log
  trap - EXIT INT TERM
  if declare -F stop_helpers >/dev/null; then stop_helpers; fi
  for i in "${!pid[@]}"; do kill -9 "${pid[$i]}" 2>/dev/null; done
  wait 2>/dev/null
  if [ "$rc" -ne 0 ]; then
    echo "$TEST_NAME: FAILED (status $rc); server logs follow" >&2
    for log in "$tmp"/server*.log; do
      [ -f "$log" ] && { echo "---- ${log##*/} (last 40 lines)"; tail -n 40 "$log"; } >&2
    done
    [ -s "$tmp/client.err" ] && { echo "---- kv_client stderr (last 20 lines)" >&2; tail -n 20 "$tmp/client.err" >&2; }
  fi
  rm -rf "$tmp"
  exit "$rc"
}

fail() {
  echo "$TEST_NAME: FAIL: $*" >&2
  exit 1
}

# ---- a cluster of three server processes ------------------------------------------------------------
# three_servers TAG: takes 6 consecutive free ports (three Raft ports from $base, then three
# client ports) and sets base, PEERS (the --peers list), client_port (server number -> port),
# SERVERS (kv_client's --servers list) and CLUSTER_ID (from $$ and the byte TAG, so that tests
# running at the same time never talk to each other's servers). SERVER_ARGS, an array the test
# may set, holds more options for every start_server.
three_servers() {
  base=$(free_ports 6) || fail "no free ports found"
  PEERS="1=127.0.0.1:$base,2=127.0.0.1:$((base + 1)),3=127.0.0.1:$((base + 2))"
  declare -gA client_port=([1]=$((base + 3)) [2]=$((base + 4)) [3]=$((base + 5)))
  # shellcheck disable=SC2034  # used by the test that sources this file
  SERVERS="1=127.0.0.1:${client_port[1]},2=127.0.0.1:${client_port[2]},3=127.0.0.1:${client_port[3]}"
  CLUSTER_ID=$(( ($$ << 8) + $1 ))
}

# start_server N: starts server N of the three on its data directory $tmp/data<N>, in the background.
start_server() {
  local i=$1
  "$SERVER" --id "$i" --data "$tmp/data$i" --peers "$PEERS" --client-port "${client_port[$i]}" \
    --cluster-id "$CLUSTER_ID" "${SERVER_ARGS[@]}" >>"$tmp/server$i.log" 2>&1 &
  pid[$i]=$!
}

# check_alive: fails unless every server in pid still runs.
check_alive() {
  local i
  for i in "${!pid[@]}"; do
    kill -0 "${pid[$i]}" 2>/dev/null || fail "${SERVER##*/} $i exited unexpectedly"
  done
}

# stop_servers: SIGTERM to every server in pid; each must exit 0 within 10 s.
stop_servers() {
  local i rc running
  for i in "${!pid[@]}"; do kill -TERM "${pid[$i]}"; done
  for _ in $(seq 1 100); do
    running=0
    for i in "${!pid[@]}"; do kill -0 "${pid[$i]}" 2>/dev/null && running=1; done
    [ "$running" -eq 0 ] && break
    sleep 0.1
  done
  for i in "${!pid[@]}"; do
    kill -0 "${pid[$i]}" 2>/dev/null && fail "${SERVER##*/} $i still running 10 s after SIGTERM"
    rc=0
    wait "${pid[$i]}" || rc=$?
    unset "pid[$i]"
    [ "$rc" -eq 0 ] || fail "${SERVER##*/} $i exited with status $rc after SIGTERM"
  done
}
