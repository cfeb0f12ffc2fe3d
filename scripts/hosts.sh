#!/usr/bin/env bash
# scripts/hosts.sh [--short] [--nodes 3|5] [--duration SECONDS] [--seed N] [--build DIR]
#
# The key-value example (examples/kv) as a cluster of real hosts: each kv_server in a network
# namespace of its own, made here (ip netns, a veth pair per host, one bridge), with file
# storage and fsync on. kv_workload (tests/hosts/) runs concurrent clients from the root
# namespace and records a history, while a nemesis, driven by a seeded random schedule, injects
# real faults, one at a time, each for a few seconds:
#   partition   iptables DROP between a minority (often the leader) and the rest, both ways
#   one-way     iptables DROP of one direction of one link
#   loss        20% of the packets between servers dropped (iptables statistic match)
#   delay       tc netem delay 40ms +/- 30ms on every host (where the kernel has netem; else a
#               tc tbf bandwidth limit, which delays by queueing, and the log says so)
#   kill -9     of a server (half the time the leader), restarted on its data a few seconds later
#   SIGSTOP     of a server (half the time the leader), SIGCONT a few seconds later
# The last quarter of the run has no faults. Then:
#   - the history must be linearizable (tests/sim/lincheck, Wing-Gong search per key);
#   - writes must succeed again after the faults stop (at least one acknowledged write in the
#     fault-free last quarter);
#   - every server must still be running (apart from those the nemesis killed, and restarted),
#     all must reach the same applied index and state hash, and SIGTERM must stop each with
#     status 0.
# Exit 0 on pass; 1 on failure (logs kept, path printed); 0 with a line starting "hosts:
# skipped:" where the machine does not allow what the test needs (not root, no namespaces, no
# iptables). Everything it creates (namespaces, veths, bridge, iptables rule, processes, temp
# dir) is removed on exit, whatever the exit. The whole run is bounded by timeout(1).
#
#   --short        CI: 3 nodes, 60 s of workload (about 2 minutes in all)
#   --nodes N      3 (default) or 5
#   --duration S   seconds of workload (default 240; --short: 60)
#   --seed N       the nemesis schedule and the workload's choices (default: from the time)
#   --build DIR    build directory with kv_server and lincheck (default build/, built if needed)
#   --mutant       check the checker: clients read with LOCALGET from any server (stale reads
#                  allowed), the nemesis only partitions; passes only if lincheck finds the
#                  history NOT linearizable
# Environment: BUILD_DIR (as --build), RAFT_JOBS=N (ninja -j N), CXX (for kv_workload when the
# build dir has no tests/hosts/kv_workload target).
set -u

short=0
mutant=0
nodes=3
duration=""
seed=$(( $(date +%s) % 100000 ))
build=""
while [ $# -gt 0 ]; do
  case $1 in
    --short) short=1; shift ;;
    --mutant) mutant=1; shift ;;
    --nodes) nodes=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "hosts.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$duration" ] || duration=$([ "$short" = 1 ] && echo 60 || echo 240)
case $nodes in 3|5) ;; *) echo "hosts.sh: --nodes is 3 or 5" >&2; exit 2 ;; esac
[[ $duration =~ ^[0-9]+$ ]] && [ "$duration" -ge 20 ] || { echo "hosts.sh: --duration must be >= 20" >&2; exit 2; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${build:-${BUILD_DIR:-$root/build}}

skip() {
  echo "hosts: skipped: $*"
  exit 0
}

# ---- can this machine run it? ------------------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, iptables, tc)"
command -v ip >/dev/null || skip "no 'ip' command (Debian package iproute2)"
if ! command -v iptables >/dev/null && command -v apt-get >/dev/null; then
  echo "hosts: installing iptables"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables >/dev/null 2>&1; }; }
fi
command -v iptables >/dev/null || skip "no iptables (Debian package iptables)"
command -v tc >/dev/null || skip "no 'tc' command (Debian package iproute2)"
probe=rhprobe$$
if ! ip netns add "$probe" 2>/dev/null; then
  skip "this machine does not allow network namespaces (ip netns add failed)"
fi
probe_ok=1
why=""
ip netns exec "$probe" ip link set lo up 2>/dev/null || { probe_ok=0; why="cannot configure a namespace"; }
if [ "$probe_ok" = 1 ] && ! ip link add "${probe}a" type veth peer name "${probe}b" 2>/dev/null; then
  probe_ok=0; why="cannot create veth pairs"
fi
ip link del "${probe}a" 2>/dev/null
if [ "$probe_ok" = 1 ] && ! ip netns exec "$probe" iptables -A INPUT -s 192.0.2.77 -j DROP 2>/dev/null; then
  probe_ok=0; why="iptables does not work inside a network namespace"
fi
netem=1
ip netns exec "$probe" tc qdisc add dev lo root netem delay 1ms 2>/dev/null || netem=0
ip netns del "$probe" 2>/dev/null
[ "$probe_ok" = 1 ] || skip "$why"

# ---- bounded in time ---------------------------------------------------------------------------
if [ -z "${HOSTS_UNDER_TIMEOUT:-}" ]; then
  HOSTS_UNDER_TIMEOUT=1 exec timeout -k 20 $((duration + 300)) bash "$0" --nodes "$nodes" \
    --duration "$duration" --seed "$seed" --build "$build" $([ "$short" = 1 ] && echo --short) \
    $([ "$mutant" = 1 ] && echo --mutant)
fi

# ---- build what it runs ------------------------------------------------------------------------
# shellcheck source=scripts/common.sh
source "$root/scripts/common.sh"
raft_install_deps
if [ ! -f "$build/meson-private/coredata.dat" ]; then
  raft_configure "$build" >/dev/null || { echo "hosts: FAIL: cannot configure $build" >&2; exit 1; }
fi
targets=$(ninja ${RAFT_JOBS:+-j "$RAFT_JOBS"} -C "$build" -t targets all 2>/dev/null)
pick() { for t in "$@"; do grep -q "^$t:" <<<"$targets" && { echo "$t"; return; }; done; }
server_target=$(pick examples/kv_server tests/process/kv_server)
lincheck_target=$(pick tests/sim/lincheck)
workload_target=$(pick tests/hosts/kv_workload)
[ -n "$server_target" ] || { echo "hosts: FAIL: no kv_server target in $build" >&2; exit 1; }
[ -n "$lincheck_target" ] || { echo "hosts: FAIL: no lincheck target (tests/sim/) in $build" >&2; exit 1; }
ninja ${RAFT_JOBS:+-j "$RAFT_JOBS"} -C "$build" "$server_target" "$lincheck_target" $workload_target >/dev/null ||
  { echo "hosts: FAIL: build failed" >&2; exit 1; }
SERVER=$build/$server_target
LINCHECK=$build/$lincheck_target
if [ -n "$workload_target" ]; then
  WORKLOAD=$build/$workload_target
else
  # Not wired into meson (tests/hosts/meson.build not included): compile it directly.
  WORKLOAD=$build/hosts-kv_workload
  if [ ! -x "$WORKLOAD" ] || [ "$root/tests/hosts/kv_workload.cpp" -nt "$WORKLOAD" ]; then
    ${CXX:-g++} -std=c++20 -O2 -Wall -Wextra -Werror "$root/tests/hosts/kv_workload.cpp" -o "$WORKLOAD" -pthread ||
      { echo "hosts: FAIL: cannot build kv_workload" >&2; exit 1; }
  fi
fi

# ---- the network -------------------------------------------------------------------------------
tag=$(( $$ % 10000 ))
p="rh$tag"                       # every name starts with it (interface names: 15 characters)
net="10.231.$(( $$ % 250 ))"     # hosts .1 .. .5, the clients' side of the bridge .254
if ip -4 addr | grep -q " $net\."; then net="10.232.$(( $$ % 250 ))"; fi
br="${p}br"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/raft-hosts.XXXXXX")
declare -A pid=()
forward_rule=0
workload_pid=""

log() { echo "hosts: [$(date +%H:%M:%S)] $*" | tee -a "$tmp/nemesis.log"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$workload_pid" ] && kill -9 "$workload_pid" 2>/dev/null
  for i in "${!pid[@]}"; do kill -CONT "${pid[$i]}" 2>/dev/null; kill -9 "${pid[$i]}" 2>/dev/null; done
  wait 2>/dev/null
  for i in $(seq 1 "$nodes"); do ip netns del "${p}n$i" 2>/dev/null; done
  ip link del "$br" 2>/dev/null
  [ "$forward_rule" = 1 ] && iptables -D FORWARD -i "$br" -o "$br" -j ACCEPT 2>/dev/null
  if [ "$rc" -ne 0 ]; then
    local keep="$build/hosts-failure-$$"
    mkdir -p "$keep" && cp -r "$tmp"/*.log "$tmp"/history.txt "$keep"/ 2>/dev/null
    echo "hosts: FAILED (status $rc); logs and history kept in $keep" >&2
    for i in $(seq 1 "$nodes"); do
      [ -f "$tmp/server$i.log" ] && { echo "---- server $i (last 15 lines)" >&2; tail -n 15 "$tmp/server$i.log" >&2; }
    done
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 124' INT TERM

fail() {
  log "FAIL: $*"
  exit 1
}

ip link add "$br" type bridge || fail "cannot create bridge $br"
ip addr add "$net.254/24" dev "$br"
ip link set "$br" up
if [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)" = 1 ]; then
  # Bridged packets pass the root namespace's FORWARD chain: let this bridge's through.
  iptables -I FORWARD -i "$br" -o "$br" -j ACCEPT && forward_rule=1
fi
for i in $(seq 1 "$nodes"); do
  ns="${p}n$i"
  ip netns add "$ns" || fail "cannot create namespace $ns"
  ip link add "${p}v$i" type veth peer name "${p}p$i" || fail "cannot create veth ${p}v$i"
  ip link set "${p}p$i" netns "$ns"
  ip link set "${p}v$i" master "$br" up
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip link set "${p}p$i" name eth0
  ip netns exec "$ns" ip addr add "$net.$i/24" dev eth0
  ip netns exec "$ns" ip link set eth0 up
  # The nemesis's rules live in chain RAFTNEM, hooked into INPUT and OUTPUT; heal = flush it.
  ip netns exec "$ns" iptables -N RAFTNEM
  ip netns exec "$ns" iptables -I INPUT -j RAFTNEM
  ip netns exec "$ns" iptables -I OUTPUT -j RAFTNEM
done

PEERS=""; SERVERS=""
for i in $(seq 1 "$nodes"); do
  PEERS="$PEERS${PEERS:+,}$i=$net.$i:7000"
  SERVERS="$SERVERS${SERVERS:+,}$i=$net.$i:8000"
done
CLUSTER_ID=$(( ($$ << 8) + 0x48 ))

start_server() {
  local i=$1
  ip netns exec "${p}n$i" "$SERVER" --id "$i" --data "$tmp/data$i" --peers "$PEERS" --client-port 8000 \
    --client-host "$net.$i" --cluster-id "$CLUSTER_ID" >>"$tmp/server$i.log" 2>&1 &
  pid[$i]=$!
}

# STATUS of node $1 from the root namespace: "id=.. role=.. ..." or nothing within 2 s.
status_of() {
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/8000" && echo STATUS >&3 && head -n 1 <&3' _ "$net.$1" 2>/dev/null |
    sed -n 's/^OK //p' | tr -d '\r'
}
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }
find_leader() {
  local i s
  for i in "${!pid[@]}"; do
    s=$(status_of "$i")
    [ "$(field "$s" role)" = leader ] && { echo "$i"; return; }
  done
}
check_alive() {
  local i
  for i in "${!pid[@]}"; do
    kill -0 "${pid[$i]}" 2>/dev/null || fail "kv_server $i exited unexpectedly"
  done
}

for i in $(seq 1 "$nodes"); do start_server "$i"; done
leader=""
for _ in $(seq 1 150); do
  leader=$(find_leader)
  [ -n "$leader" ] && break
  sleep 0.1
done
check_alive
[ -n "$leader" ] || fail "no leader within 15 s of starting $nodes servers"
log "$nodes hosts up in namespaces ${p}n1..${p}n$nodes ($net.1-$net.$nodes, bridge $br), leader $leader;" \
  "seed $seed; $([ "$netem" = 1 ] && echo 'delay with netem' || echo 'no netem in this kernel: delay by a tbf bandwidth limit')"

# ---- the nemesis -------------------------------------------------------------------------------
RANDOM=$seed
rnd() { echo $(( RANDOM % $1 )); }
in_ns() { ip netns exec "${p}n$1" "${@:2}"; }
cut_link() {  # cut_link A B: packets from A to B are dropped (at both ends, so both see it)
  in_ns "$1" iptables -A RAFTNEM -d "$net.$2" -j DROP
  in_ns "$2" iptables -A RAFTNEM -s "$net.$1" -j DROP
}
heal() {
  local i
  for i in $(seq 1 "$nodes"); do
    in_ns "$i" iptables -F RAFTNEM
    in_ns "$i" tc qdisc del dev eth0 root 2>/dev/null
  done
  for i in "${!pid[@]}"; do kill -CONT "${pid[$i]}" 2>/dev/null; done
}
victim() {  # half the time the leader (if one is known), else any node
  local l
  if [ "$(rnd 2)" = 0 ]; then l=$(find_leader); [ -n "$l" ] && { echo "$l"; return; }; fi
  echo $(( $(rnd "$nodes") + 1 ))
}
declare -A injected=([partition]=0 [one-way]=0 [loss]=0 [delay]=0 [kill9]=0 [sigstop]=0)
nemesis_round() {
  local v a b i j hold=$(( 2 + $(rnd 4) )) minority=() killed="" kind
  kind=$(rnd 6)
  [ "$mutant" = 1 ] && kind=0  # partitions only: a minority's state machine falls behind
  case $kind in
    0)
      v=$(victim); minority=("$v")
      if [ "$nodes" = 5 ] && [ "$(rnd 2)" = 0 ]; then minority+=($(( v % nodes + 1 ))); fi
      log "partition: {${minority[*]}} | the rest, for $hold s"
      for i in "${minority[@]}"; do
        for j in $(seq 1 "$nodes"); do
          [[ " ${minority[*]} " == *" $j "* ]] && continue
          cut_link "$i" "$j"; cut_link "$j" "$i"
        done
      done
      injected[partition]=$(( injected[partition] + 1 )) ;;
    1)
      a=$(victim); b=$(( (a + $(rnd $((nodes - 1)))) % nodes + 1 ))
      log "one-way cut: $a -> $b dropped, for $hold s"
      cut_link "$a" "$b"
      injected[one-way]=$(( injected[one-way] + 1 )) ;;
    2)
      log "loss: 20% of server-to-server packets dropped, for $hold s"
      for i in $(seq 1 "$nodes"); do
        for j in $(seq 1 "$nodes"); do
          [ "$i" = "$j" ] || in_ns "$i" iptables -A RAFTNEM -s "$net.$j" -m statistic --mode random \
            --probability 0.2 -j DROP
        done
      done
      injected[loss]=$(( injected[loss] + 1 )) ;;
    3)
      if [ "$netem" = 1 ]; then
        log "delay: netem 40ms +/- 30ms on every host, for $hold s"
        for i in $(seq 1 "$nodes"); do in_ns "$i" tc qdisc add dev eth0 root netem delay 40ms 30ms; done
      else
        log "delay: tbf 128kbit (queueing delay up to 400 ms) on every host, for $hold s"
        for i in $(seq 1 "$nodes"); do
          in_ns "$i" tc qdisc add dev eth0 root tbf rate 128kbit burst 4kb latency 400ms
        done
      fi
      injected[delay]=$(( injected[delay] + 1 )) ;;
    4)
      v=$(victim)
      log "kill -9 of server $v, restarted in $hold s"
      kill -9 "${pid[$v]}" 2>/dev/null
      wait "${pid[$v]}" 2>/dev/null
      unset "pid[$v]"
      killed=$v
      injected[kill9]=$(( injected[kill9] + 1 )) ;;
    5)
      v=$(victim)
      log "SIGSTOP of server $v, SIGCONT in $hold s"
      kill -STOP "${pid[$v]}"
      injected[sigstop]=$(( injected[sigstop] + 1 )) ;;
  esac
  sleep "$hold"
  heal
  if [ -n "$killed" ]; then
    start_server "$killed"
    log "server $killed restarted on its data"
  fi
  check_alive
  sleep $(( 1 + $(rnd 3) ))
}

# ---- the run -----------------------------------------------------------------------------------
"$WORKLOAD" --servers "$SERVERS" --history "$tmp/history.txt" --clients 6 --duration "$duration" \
  --keys 4 --rotate 3 --op-timeout 4 --seed "$seed" $([ "$mutant" = 1 ] && echo --reads local) \
  >"$tmp/workload.log" 2>&1 &
workload_pid=$!
start_ns=$(date +%s%N)   # just before the workload's clock starts: history times are below wall offsets
started=$SECONDS
# A round lasts at most about 8 s: the last one ends by three quarters of the run.
faults_until=$(( duration * 3 / 4 - 8 ))
sleep 2
while [ $(( SECONDS - started )) -lt "$faults_until" ]; do
  kill -0 "$workload_pid" 2>/dev/null || break
  nemesis_round
done
heal
healed_at_ns=$(( $(date +%s%N) - start_ns ))
log "faults stop; the last $(( duration - (SECONDS - started) )) s of the workload run without faults"
wait "$workload_pid"
wrc=$?
workload_pid=""
cat "$tmp/workload.log"
[ "$wrc" = 0 ] || fail "kv_workload failed (status $wrc)"
check_alive

# ---- the checks --------------------------------------------------------------------------------
ops=$(grep -vc '^#' "$tmp/history.txt")
[ "$ops" -gt 0 ] || fail "the workload recorded no operation"
log "checking $ops operations for linearizability"
"$LINCHECK" "$tmp/history.txt" >"$tmp/lincheck.log" 2>&1
lrc=$?
cat "$tmp/lincheck.log"
if [ "$mutant" = 1 ]; then
  case $lrc in
    1) log "the checker sees the stale reads of LOCALGET: the history is not linearizable, as it must not be" ;;
    0) fail "mutant: reads of possibly stale local state, yet the history was found linearizable" ;;
    *) fail "mutant: lincheck failed (status $lrc)" ;;
  esac
  lrc=0
fi
case $lrc in
  0) ;;
  1) fail "the history is NOT linearizable (lincheck above)" ;;
  3) fail "lincheck gave up (search too large): inconclusive" ;;
  *) fail "lincheck failed (status $lrc)" ;;
esac

# Writes succeed again once the faults stop: some write that started after the heal was acknowledged.
recovered=$(awk -v t="$healed_at_ns" '$1 !~ /^#/ && $2 > t && $4 != "get" && $7 == "ok"' "$tmp/history.txt" | wc -l)
[ "$recovered" -gt 0 ] || fail "no write was acknowledged after the faults stopped"

deadline=$((SECONDS + 30))
converged=0
while [ $SECONDS -lt $deadline ]; do
  declare -A st=()
  for i in $(seq 1 "$nodes"); do st[$i]=$(status_of "$i"); done
  a1=$(field "${st[1]}" applied); h1=$(field "${st[1]}" hash)
  same=1; l=""
  for i in $(seq 1 "$nodes"); do
    [ "$(field "${st[$i]}" applied)" = "$a1" ] && [ "$(field "${st[$i]}" hash)" = "$h1" ] || same=0
    [ "$(field "${st[$i]}" role)" = leader ] && l=$i
  done
  if [ -n "$a1" ] && [ "$same" = 1 ] && [ -n "$l" ] && [ "$(field "${st[$l]}" commit)" = "$a1" ]; then
    converged=1
    break
  fi
  sleep 0.3
done
if [ "$converged" != 1 ]; then
  for i in $(seq 1 "$nodes"); do echo "  node $i: ${st[$i]}" >&2; done
  fail "the servers did not converge to one applied index and state hash within 30 s"
fi

for i in "${!pid[@]}"; do kill -TERM "${pid[$i]}"; done
for i in "${!pid[@]}"; do
  for _ in $(seq 1 100); do kill -0 "${pid[$i]}" 2>/dev/null || break; sleep 0.1; done
  kill -0 "${pid[$i]}" 2>/dev/null && fail "kv_server $i still running 10 s after SIGTERM"
  rc=0
  wait "${pid[$i]}" || rc=$?
  unset "pid[$i]"
  [ "$rc" = 0 ] || fail "kv_server $i exited with status $rc after SIGTERM"
done

summary=""
for k in partition one-way loss delay kill9 sigstop; do summary="$summary $k ${injected[$k]},"; done
log "PASS$([ "$mutant" = 1 ] && echo ' (mutant: stale reads detected)'): $nodes hosts, $duration s, seed $seed: $ops operations ($recovered writes acknowledged after the" \
  "faults stopped), $([ "$mutant" = 1 ] && echo 'NOT linearizable, as expected' || echo linearizable);" \
  "faults:${summary%,}; all servers applied index $a1 (hash $h1)"
exit 0
