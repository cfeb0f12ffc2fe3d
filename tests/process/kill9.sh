#!/usr/bin/env bash
# tests/process/kill9.sh KV_SERVER KV_CLIENT - kill -9 the leader of a 3-process cluster while
# clients write, restart it, and check that no acknowledged write was lost or duplicated.
#
#  1. starts three kv_server processes on loopback, file storage with fsync on, in a temp dir;
#  2. runs three writers in the background, each a loop of kv_client calls:
#       writer 1: put k1.<i> v1.<i>             (distinct keys)
#       writer 2, 3: append log<w> "t<w>.<i>;"   (unique tokens appended to one key per writer)
#     and records for every write whether it was acknowledged (exit 0), has an unknown outcome
#     (exit 3: the connection broke after sending, or leadership was lost) or certainly failed;
#  3. kills the leader with SIGKILL mid-stream, lets the writers carry on against the survivors,
#     then restarts the killed server on the same data directory;
#  4. stops the writers, waits until all three nodes have applied the same log (STATUS), and
#     checks on EVERY node, through LOCALGET (the node's own state machine):
#       - every acknowledged put is present with its value; any other put key holds its own value;
#       - in each append log, every acknowledged token appears exactly once, every token at most
#         once, no certainly-failed token appears, and tokens appear in the order they were written;
#       - the three nodes report the same applied index and state-machine hash.
# Exit 0 only if every check passes. Ports are taken from a range derived from $$.
set -u

# shellcheck source=tests/process/lib.sh
source "$(dirname "$0")/lib.sh"
begin_process_test kill9 150 30 "$@"

WRITE_BEFORE_KILL=2     # seconds of writes before the kill
WRITE_AFTER_KILL=3      # seconds of writes while the killed node is down
WRITE_AFTER_RESTART=2   # seconds of writes after it restarted

writer_pids=()
# Called by end_process_test: the writers stop before the servers are killed.
# shellcheck disable=SC2317  # (called indirectly)
stop_helpers() {
  touch "$tmp/stop" 2>/dev/null
  for p in "${writer_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
}

# Ports: three Raft ports, then three client ports. The servers sync (fsync on, the default).
three_servers 0x4B

client() { timeout -k 2 15 "$CLIENT" --servers "$SERVERS" "$@" 2>>"$tmp/client.err"; }

# STATUS of node $1 (one line "id=.. role=.. ...", empty if it does not answer within 2 s).
status_of() { client --node "$1" --timeout 2 status || true; }
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

find_leader() {  # prints the id of a node that says it leads, or nothing
  local i s
  for i in 1 2 3; do
    [ -n "${pid[$i]:-}" ] || continue
    s=$(status_of "$i")
    [ "$(field "$s" role)" = leader ] && { echo "$i"; return; }
  done
}

wait_for_leader() {
  local deadline=$((SECONDS + 15)) l
  while [ $SECONDS -lt $deadline ]; do
    l=$(find_leader)
    [ -n "$l" ] && { echo "$l"; return; }
    sleep 0.1
  done
}

writer() {  # writer W KIND: writes until $tmp/stop exists
  local w=$1 kind=$2 i=0 rc
  while [ ! -e "$tmp/stop" ]; do
    i=$((i + 1))
    if [ "$kind" = put ]; then
      client --timeout 10 put "k$w.$i" "v$w.$i" >/dev/null
    else
      client --timeout 10 append "log$w" "t$w.$i;" >/dev/null
    fi
    rc=$?
    case $rc in
      0) echo "$i" >>"$tmp/acked$w" ;;     # acknowledged
      1) echo "$i" >>"$tmp/failed$w" ;;    # certainly not applied (kv_client's exit status 1)
      *) echo "$i" >>"$tmp/unknown$w" ;;   # 3: outcome unknown; 124/137: killed by timeout(1)
    esac
  done
  echo "$i" >"$tmp/attempted$w"
}

count() { [ -f "$1" ] && wc -l <"$1" | tr -d ' ' || echo 0; }
acked_total() { echo $(( $(count "$tmp/acked1") + $(count "$tmp/acked2") + $(count "$tmp/acked3") )); }

# ---- 1. start the cluster -------------------------------------------------------------------
for i in 1 2 3; do start_server "$i"; done
leader=$(wait_for_leader)
check_alive
[ -n "$leader" ] || fail "no leader elected within 15 s"
echo "kill9: cluster up on ports $base-$((base + 5)), leader is node $leader"

# ---- 2. writers ------------------------------------------------------------------------------
writer 1 put & writer_pids+=($!)
writer 2 append & writer_pids+=($!)
writer 3 append & writer_pids+=($!)
sleep "$WRITE_BEFORE_KILL"
check_alive
before_kill=$(acked_total)
[ "$before_kill" -gt 0 ] || fail "no write was acknowledged in the first $WRITE_BEFORE_KILL s"

# ---- 3. kill -9 the leader mid-stream, keep writing, restart it -----------------------------------
victim=$(find_leader)
[ -n "$victim" ] || fail "no leader to kill"
kill -9 "${pid[$victim]}"
{ wait "${pid[$victim]}"; } 2>/dev/null
unset "pid[$victim]"
echo "kill9: killed leader node $victim (SIGKILL) after $before_kill acknowledged writes"
sleep "$WRITE_AFTER_KILL"
check_alive
at_restart=$(acked_total)
[ "$at_restart" -gt "$before_kill" ] || fail "no write was acknowledged while node $victim was down"
start_server "$victim"
# The server logs what it loaded from storage at start; the second such line is this start's.
for _ in $(seq 1 50); do
  [ "$(grep -c 'log entries up to index' "$tmp/server$victim.log")" -ge 2 ] && break
  sleep 0.1
done
[ "$(grep -c 'log entries up to index' "$tmp/server$victim.log")" -ge 2 ] || fail "restarted node $victim did not start"
recovered=$(sed -n 's/.*log entries up to index \([0-9]*\).*/\1/p' "$tmp/server$victim.log" | tail -n 1)
[ "${recovered:-0}" -ge 2 ] || fail "restarted node $victim recovered no log from its data directory"
echo "kill9: restarted node $victim on its data directory: recovered log up to index $recovered" \
  "($((at_restart - before_kill)) writes acknowledged while it was down)"
sleep "$WRITE_AFTER_RESTART"
touch "$tmp/stop"
for p in "${writer_pids[@]}"; do wait "$p"; done
writer_pids=()
check_alive
total=$(acked_total)
[ "$total" -gt "$at_restart" ] || fail "no write was acknowledged after node $victim restarted"

# ---- 4. wait until every node has applied the same log ---------------------------------------------
deadline=$((SECONDS + 30))
converged=0
while [ $SECONDS -lt $deadline ]; do
  declare -A st=()
  for i in 1 2 3; do st[$i]=$(status_of "$i"); done
  a1=$(field "${st[1]}" applied); a2=$(field "${st[2]}" applied); a3=$(field "${st[3]}" applied)
  h1=$(field "${st[1]}" hash); h2=$(field "${st[2]}" hash); h3=$(field "${st[3]}" hash)
  l=""
  for i in 1 2 3; do [ "$(field "${st[$i]}" role)" = leader ] && l=$i; done
  if [ -n "$l" ] && [ -n "$a1" ] && [ "$a1" = "$a2" ] && [ "$a2" = "$a3" ] &&
     [ "$(field "${st[$l]}" commit)" = "$a1" ] && [ "$h1" = "$h2" ] && [ "$h2" = "$h3" ]; then
    converged=1
    break
  fi
  sleep 0.2
done
if [ "$converged" -ne 1 ]; then
  for i in 1 2 3; do echo "  node $i: ${st[$i]}" >&2; done
  fail "the three nodes did not converge to the same applied index and hash within 30 s"
fi
echo "kill9: all 3 nodes applied index $a1, state hash $h1"

# ---- 5. check every acknowledged write on every node -------------------------------------------
acked_puts=$(count "$tmp/acked1")
attempted_puts=$(cat "$tmp/attempted1")
for node in 1 2 3; do
  # puts: each acknowledged key holds its value; any other attempted key is absent (kv_client
  # exits 4: NOTFOUND) or holds its own value (an unknown-outcome write may or may not have been
  # applied).
  declare -A is_acked=()
  if [ -f "$tmp/acked1" ]; then while read -r i; do is_acked[$i]=1; done <"$tmp/acked1"; fi
  for i in $(seq 1 "$attempted_puts"); do
    rc=0
    v=$(client --node "$node" --timeout 5 localget "k1.$i") || rc=$?
    [ "$rc" -eq 0 ] || [ "$rc" -eq 4 ] || fail "node $node: LOCALGET k1.$i failed (kv_client exit $rc)"
    if [ -n "${is_acked[$i]:-}" ]; then
      [ "$rc" -eq 0 ] && [ "$v" = "v1.$i" ] ||
        fail "node $node: acknowledged put k1.$i=v1.$i reads '$v' (kv_client exit $rc)"
    else
      [ "$rc" -eq 4 ] || [ "$v" = "v1.$i" ] || fail "node $node: unacknowledged put k1.$i reads '$v'"
    fi
  done

  # appends: tokens of each log, in order, each at most once; acknowledged ones exactly once;
  # certainly-failed ones never.
  for w in 2 3; do
    rc=0
    v=$(client --node "$node" --timeout 5 localget "log$w") || rc=$?  # 4: no append was applied
    [ "$rc" -eq 0 ] || [ "$rc" -eq 4 ] || fail "node $node: LOCALGET log$w failed (kv_client exit $rc)"
    tr ';' '\n' <<<"$v" | sed '/^$/d' >"$tmp/tokens$w.node$node"
    tokens=$(count "$tmp/tokens$w.node$node")
    dups=$(sort "$tmp/tokens$w.node$node" | uniq -d | head -n 3)
    [ -z "$dups" ] || fail "node $node: log$w holds a token more than once: $dups"
    grep -qv "^t$w\.[0-9][0-9]*\$" "$tmp/tokens$w.node$node" &&
      fail "node $node: log$w holds a token not written by writer $w: $(grep -v "^t$w\." "$tmp/tokens$w.node$node" | head -n 1)"
    sed "s/^t$w\.//" "$tmp/tokens$w.node$node" >"$tmp/seq$w.node$node"
    sort -n -c "$tmp/seq$w.node$node" 2>/dev/null || fail "node $node: log$w tokens are out of write order"
    if [ -f "$tmp/acked$w" ]; then
      missing=$(sort "$tmp/acked$w" | comm -23 - <(sort "$tmp/seq$w.node$node") | head -n 3)
      [ -z "$missing" ] || fail "node $node: acknowledged appends missing from log$w: t$w.$missing"
    fi
    if [ -f "$tmp/failed$w" ]; then
      present=$(sort "$tmp/failed$w" | comm -12 - <(sort "$tmp/seq$w.node$node") | head -n 3)
      [ -z "$present" ] || fail "node $node: certainly-failed appends present in log$w: t$w.$present"
    fi
    [ "$tokens" -le "$(cat "$tmp/attempted$w")" ] || fail "node $node: log$w has more tokens than writes"
  done
done

# ---- 6. clean shutdown: SIGTERM makes every server stop its node and exit 0 ---------------------
stop_servers

unknown=$(( $(count "$tmp/unknown1") + $(count "$tmp/unknown2") + $(count "$tmp/unknown3") ))
failed=$(( $(count "$tmp/failed1") + $(count "$tmp/failed2") + $(count "$tmp/failed3") ))
echo "kill9: $total acknowledged writes ($acked_puts puts, $((total - acked_puts)) appends;" \
  "$before_kill before the kill, $((at_restart - before_kill)) with node $victim down), all present" \
  "on 3 nodes; $unknown with unknown outcome, $failed failed, none duplicated"
exit 0
