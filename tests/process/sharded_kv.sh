#!/usr/bin/env bash
# tests/process/sharded_kv.sh SHARDED_KV_SERVER KV_CLIENT - three sharded_kv_server processes
# (examples/sharded_kv/), each a replica of 8 Raft groups, served through kv_client unchanged.
#
#  1. starts three servers with --groups 8 and waits until every process sees every group led by
#     its preferred process (group g by process ((g-1) mod 3) + 1: the leaders spread);
#  2. puts 50 keys through kv_client, starting each at another process (it follows
#     `ERR not_leader` to the key's group leader), checks that the keys land in every group, and
#     GETs every key back from each process over raw TCP;
#  3. kills one process with SIGKILL: every key must still be readable through the two others,
#     and writable (new values put through them, read back from both) once its groups re-elected;
#  4. restarts the killed process on its data directory: it must serve every key's newest value
#     and take writes, and the leaders must spread back to their preferred processes;
#  5. SIGTERM: every server stops its groups and exits 0.
# Verdicts are on replies only; every wait polls until the expected reply, within a bound.
# Exit 0 only if every check passes.
set -u

# shellcheck source=tests/process/lib.sh
source "$(dirname "$0")/lib.sh"
begin_process_test sharded_kv 270 30 "$@"

GROUP_COUNT=8
KEYS=50
WAIT=60          # seconds: the bound of every wait for a reply
VICTIM=2         # the process killed in step 3
PREFERRED="1,2,3,1,2,3,1,2"   # the preferred leader of groups 1..8 on processes 1..3

# Ports: three Raft ports, then three client ports.
three_servers 0x53
# --no-fsync: kill -9 loses nothing the kernel has (the data is in the page cache), and three
# processes with eight groups each would otherwise sync on every round of a shared machine.
SERVER_ARGS=(--groups "$GROUP_COUNT" --no-fsync)

# ask PROCESS LINE: sends LINE to the process's client port over a new connection and prints the
# reply line (nothing if it cannot connect or no reply comes within 5 s).
ask() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/${client_port[$1]}" || exit 0
    printf '%s\n' "$2" >&3
    IFS= read -r -t 5 reply <&3 && printf '%s\n' "$reply"
  ) 2>/dev/null
}

# await_reply PROCESS LINE WANT: asks until the reply is WANT; fails after $WAIT seconds.
await_reply() {
  local deadline=$((SECONDS + WAIT)) reply
  while :; do
    reply=$(ask "$1" "$2")
    [ "$reply" = "$3" ] && return 0
    check_alive
    [ $SECONDS -lt $deadline ] || fail "process $1: '$2' answers '$reply', not '$3', after $WAIT s"
    sleep 0.2
  done
}

# leaders_of PROCESS: the process's view of each group's leader, "l1,l2,...,l8" (0: unknown).
leaders_of() { ask "$1" STATUS | tr ' ' '\n' | sed -n 's/^leaders=//p'; }

# await_leaders PROCESS PATTERN: waits until the process's view of the leaders matches PATTERN
# (an extended regular expression, anchored at both ends).
await_leaders() {
  local deadline=$((SECONDS + WAIT)) seen
  while :; do
    seen=$(leaders_of "$1")
    [[ $seen =~ ^$2$ ]] && return 0
    check_alive
    [ $SECONDS -lt $deadline ] || fail "process $1 sees the leaders '$seen', not '$2', after $WAIT s"
    sleep 0.2
  done
}

# put_through PROCESS KEY VALUE: kv_client put, starting at PROCESS, until it is acknowledged.
# A put whose outcome was unknown (exit 3) is sent again: putting the same value twice leaves the
# same state, and the reads that follow check it.
put_through() {
  local deadline=$((SECONDS + WAIT)) rc
  while :; do
    rc=0
    timeout -k 2 30 "$CLIENT" --servers "$SERVERS" --node "$1" --timeout 10 put "$2" "$3" >/dev/null \
      2>>"$tmp/client.err" || rc=$?
    [ "$rc" -eq 0 ] && return 0
    check_alive
    [ $SECONDS -lt $deadline ] || fail "put $2=$3 through process $1 not acknowledged in $WAIT s (last exit $rc)"
    sleep 0.2
  done
}

# put_all VALUE_PREFIX PROCESS...: puts key<i>=<prefix><i> for every key, the i-th starting at the
# (i mod count)-th of the given processes.
put_all() {
  local prefix=$1 i
  shift
  local through=("$@")
  for i in $(seq 1 "$KEYS"); do put_through "${through[$((i % ${#through[@]}))]}" "key$i" "$prefix$i"; done
}

# get_all VALUE_PREFIX PROCESS...: every key reads key<i> -> <prefix><i> through each process.
get_all() {
  local prefix=$1 p i
  shift
  for p in "$@"; do
    for i in $(seq 1 "$KEYS"); do await_reply "$p" "GET key$i" "OK $prefix$i"; done
  done
}

# ---- 1. start; wait for the leaders to spread -----------------------------------------------
for i in 1 2 3; do start_server "$i"; done
for i in 1 2 3; do await_leaders "$i" "$PREFERRED"; done
echo "sharded_kv: 3 processes x $GROUP_COUNT groups up on ports $base-$((base + 5)); leaders $PREFERRED"

# ---- 2. put 50 keys through the three processes, read them back from each ---------------------
put_all v 1 2 3
declare -A groups_used=()
for i in $(seq 1 "$KEYS"); do
  g=$(ask 1 "GROUP key$i")
  [[ $g =~ ^OK\ [1-8]$ ]] || fail "GROUP key$i answers '$g'"
  groups_used[${g#OK }]=1
done
[ "${#groups_used[@]}" -eq "$GROUP_COUNT" ] ||
  fail "the $KEYS keys landed in only ${#groups_used[@]} of $GROUP_COUNT groups"
get_all v 1 2 3
echo "sharded_kv: $KEYS keys put through all 3 processes (over all $GROUP_COUNT groups), read back from each"

# ---- 3. kill -9 one process: the others re-elect, read and write every key -------------------------
survivors=(1 3)
{ kill -9 "${pid[$VICTIM]}" && wait "${pid[$VICTIM]}"; } 2>/dev/null  # (quiet: no "Killed" line)
unset "pid[$VICTIM]"
get_all v "${survivors[@]}"
put_all w "${survivors[@]}"
get_all w "${survivors[@]}"
# Every group took writes, so every group has a leader among the survivors, and both know it.
for p in "${survivors[@]}"; do await_leaders "$p" "[13](,[13]){$((GROUP_COUNT - 1))}"; done
echo "sharded_kv: process $VICTIM killed (SIGKILL); every key read and rewritten through processes" \
  "${survivors[*]} (leaders now $(leaders_of 1))"

# ---- 4. restart it: it serves again, and the leaders spread back ------------------------------------
start_server "$VICTIM"
get_all w "$VICTIM"
for i in $(seq 1 "$KEYS"); do put_through "$VICTIM" "key$i" "x$i"; done
get_all x 1 2 3
for i in 1 2 3; do await_leaders "$i" "$PREFERRED"; done
echo "sharded_kv: process $VICTIM restarted on its data: serves every key, takes writes, leads its groups again"

# ---- 5. clean shutdown: SIGTERM makes every server stop its groups and exit 0 -----------------------
stop_servers
echo "sharded_kv: all checks passed"
exit 0
