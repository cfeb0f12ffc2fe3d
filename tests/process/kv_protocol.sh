#!/usr/bin/env bash
# tests/process/kv_protocol.sh KV_SERVER KV_CLIENT - the client protocol of one kv_server process,
# and what a server says when one of its ports is taken.
#
#  1. starts a one-node cluster (it elects itself) and, over one raw TCP connection, checks the
#     reply to each command: a missing key answers NOTFOUND, never `OK `; PUT and APPEND without
#     a value are refused with `ERR empty_value` and store nothing; PUT answers the previous value
#     (plain OK for a new key), DEL the deleted one (NOTFOUND when there was none);
#  2. checks kv_client's side: `get` of a missing key prints nothing and exits 4; `put` with an
#     empty value is a usage error (exit 2); a stored value prints and exits 0;
#  3. starts a second server on the first one's Raft port, then one on its client port: each
#     must exit 1 at once with a message naming that port (and not the other), and no exception
#     text from the C++ runtime.
# Exit 0 only if every check passes.
set -u

# shellcheck source=tests/process/lib.sh
source "$(dirname "$0")/lib.sh"
begin_process_test kv_protocol 60 10 "$@"

base=$(free_ports 3) || fail "no free ports found"
raft_port=$base
serving_port=$((base + 1))
spare_port=$((base + 2))

# ---- 1. the protocol, over raw TCP ------------------------------------------------------------
"$SERVER" --id 1 --data "$tmp/data" --peers "1=127.0.0.1:$raft_port" --client-port "$serving_port" \
  --no-fsync >>"$tmp/server.log" 2>&1 &
pid[1]=$!

# Waits until the server leads (STATUS says role=leader), up to 15 s.
deadline=$((SECONDS + 15))
until "$CLIENT" --servers "1=127.0.0.1:$serving_port" --timeout 2 status 2>/dev/null | grep -q ' role=leader '; do
  kill -0 "${pid[1]}" 2>/dev/null || fail "kv_server exited at start"
  [ $SECONDS -lt $deadline ] || fail "the one-node cluster elected no leader within 15 s"
  sleep 0.1
done

exec 3<>"/dev/tcp/127.0.0.1/$serving_port" || fail "cannot connect to the client port"
# expect COMMAND REPLY: sends COMMAND (verbatim, trailing spaces included) and checks the reply line.
expect() {
  local reply
  printf '%s\n' "$1" >&3
  IFS= read -r -t 10 reply <&3 || fail "no reply to '$1'"
  [ "$reply" = "$2" ] || fail "'$1' answered '$reply', expected '$2'"
}
# expect_prefix COMMAND PREFIX: the same, for a reply that starts with PREFIX.
expect_prefix() {
  local reply
  printf '%s\n' "$1" >&3
  IFS= read -r -t 10 reply <&3 || fail "no reply to '$1'"
  [[ $reply == "$2"* ]] || fail "'$1' answered '$reply', expected '$2...'"
}

expect "GET missing" "NOTFOUND"
expect "LOCALGET missing" "NOTFOUND"
expect_prefix "PUT k " "ERR empty_value"
expect_prefix "APPEND k " "ERR empty_value"
expect_prefix "PUT k" "ERR usage"
expect "GET k" "NOTFOUND"                  # the refused writes stored nothing, not an empty value
expect "PUT k one" "OK"                    # a new key: no previous value
expect "PUT k two" "OK one"
expect "APPEND k +" "OK two+"
expect "GET k" "OK two+"
expect "LOCALGET k" "OK two+"
expect "DEL k" "OK two+"
expect "DEL k" "NOTFOUND"
expect "GET k" "NOTFOUND"
expect "PUT spaced a b " "OK"              # the value is the rest of the line, spaces included
expect "GET spaced" "OK a b "
exec 3>&-
echo "kv_protocol: replies ok (NOTFOUND for a missing key, ERR empty_value for an empty value)"

# ---- 2. kv_client ---------------------------------------------------------------------------------
kv() { "$CLIENT" --servers "1=127.0.0.1:$serving_port" --timeout 5 "$@" 2>>"$tmp/client.err"; }
rc=0
out=$(kv get missing) || rc=$?
[ "$rc" -eq 4 ] && [ -z "$out" ] || fail "kv_client get of a missing key: exit $rc, output '$out' (expected 4, nothing)"
rc=0
kv put k "" >/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "kv_client put with an empty value: exit $rc (expected 2, usage)"
rc=0
out=$(kv put k v) || rc=$?
[ "$rc" -eq 0 ] && [ -z "$out" ] || fail "kv_client put of a new key: exit $rc, output '$out' (expected 0, nothing)"
rc=0
out=$(kv get k) || rc=$?
[ "$rc" -eq 0 ] && [ "$out" = v ] || fail "kv_client get k: exit $rc, output '$out' (expected 0, 'v')"
rc=0
out=$(kv del nothing) || rc=$?
[ "$rc" -eq 4 ] && [ -z "$out" ] || fail "kv_client del of a missing key: exit $rc, output '$out' (expected 4, nothing)"
echo "kv_client: ok (exit 4 for a missing key, 2 for an empty value)"

# ---- 3. a taken port names itself -------------------------------------------------------------------
# taken_port_exits NAME DATA ARGS...: starts a kv_server that must exit 1 within 10 s; its stderr
# goes to $tmp/NAME.err.
taken_port_exits() {
  local name=$1 data=$2 rc=0
  shift 2
  timeout -k 2 10 "$SERVER" --id 1 --data "$tmp/$data" "$@" 2>"$tmp/$name.err" || rc=$?
  [ "$rc" -eq 1 ] || fail "kv_server with the $name taken exited with status $rc, expected 1: $(cat "$tmp/$name.err")"
  if grep -qE 'terminate called|what\(\)' "$tmp/$name.err"; then
    fail "kv_server with the $name taken died of an exception: $(cat "$tmp/$name.err")"
  fi
}
taken_port_exits "Raft port" second --peers "1=127.0.0.1:$raft_port" --client-port "$spare_port"
grep -qF "Raft port 127.0.0.1:$raft_port" "$tmp/Raft port.err" && grep -q 'already in use' "$tmp/Raft port.err" ||
  fail "a taken Raft port is not named: $(cat "$tmp/Raft port.err")"
grep -q 'client port' "$tmp/Raft port.err" && fail "a taken Raft port is blamed on the client port: $(cat "$tmp/Raft port.err")"
taken_port_exits "client port" third --peers "1=127.0.0.1:$spare_port" --client-port "$serving_port"
grep -qF "client port 127.0.0.1:$serving_port" "$tmp/client port.err" && grep -q 'already in use' "$tmp/client port.err" ||
  fail "a taken client port is not named: $(cat "$tmp/client port.err")"
grep -q 'Raft port' "$tmp/client port.err" && fail "a taken client port is blamed on the Raft port: $(cat "$tmp/client port.err")"
echo "kv_protocol: a taken port is named: $(cat "$tmp/Raft port.err") / $(cat "$tmp/client port.err")"

# The first server is still serving, undisturbed.
out=$(kv get k) || fail "the first server stopped answering after the refused starts"
[ "$out" = v ] || fail "the first server's k reads '$out' after the refused starts"

stop_servers
echo "kv_protocol: all checks passed"
exit 0
