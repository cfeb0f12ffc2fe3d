// examples/kv/client_protocol.hpp - the requests and replies of the key-value client protocol
// (README.md in this directory) that kv_server and sharded_kv_server both speak: splitting a
// request line, the key commands PUT, GET, DEL, APPEND and LOCALGET on a node and its state
// machine, the replies to raft errors, and the fields of STATUS.
#pragma once

#include <cctype>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include <asio/awaitable.hpp>
#include <asio/use_awaitable.hpp>

#include <raft/raft.hpp>
#include <raft/testing/kv_state_machine.hpp>

namespace kv {

/// "COMMAND [args]": the command in upper case, and what follows its first space.
struct request {
  std::string command;
  std::string_view args;
};

inline request split_request(std::string_view line) {
  const auto sp = line.find(' ');
  request r{std::string(line.substr(0, sp)), sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1)};
  for (char& ch : r.command) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return r;
}

/// PUT and APPEND take a value after the key; the other key commands only a key.
inline bool takes_value(std::string_view command) { return command == "PUT" || command == "APPEND"; }

/// The key (and value) of a key command, or `refusal`, the reply to a malformed one.
struct key_args {
  std::string_view key;
  std::string_view value;  // PUT, APPEND: everything after the key and one space
  std::string refusal;     // empty when the arguments are fine
};

inline key_args parse_key_args(const std::string& command, std::string_view args) {
  key_args k{args, {}, {}};
  if (takes_value(command)) {
    const auto key_end = args.find(' ');
    if (key_end == std::string_view::npos) return {{}, {}, "ERR usage: " + command + " key value"};
    k.key = args.substr(0, key_end);
    k.value = args.substr(key_end + 1);
    // Values are never empty, so that "no value" can only mean a missing key.
    if (k.value.empty())
      return {{}, {}, "ERR empty_value (" + command + " needs a non-empty value; DEL removes a key)"};
  } else if (k.key.find(' ') != std::string_view::npos) {
    return {{}, {}, "ERR usage: " + command + " key"};
  }
  if (k.key.empty()) return {{}, {}, "ERR usage: " + command + " needs a non-empty key"};
  return k;
}

/// `OK <value>` for a key that has a value, `NOTFOUND` for a missing one.
inline std::string value_reply(const std::optional<std::string>& value) { return value ? "OK " + *value : "NOTFOUND"; }

inline std::string error_reply(const raft::error& e) {
  switch (e.code) {
    case raft::errc::not_leader: return "ERR not_leader " + std::to_string(e.leader_hint.value);
    case raft::errc::leadership_lost: return "ERR leadership_lost (outcome unknown)";
    case raft::errc::stopped: return "ERR stopped (outcome unknown)";
    case raft::errc::committed_result_unknown: return "ERR committed (result unknown)";
    case raft::errc::busy: return "ERR busy";
    case raft::errc::transferring: return "ERR busy (leadership transfer)";
    case raft::errc::timeout: return "ERR timeout (not confirmed in time)";
    default: return "ERR " + e.message();
  }
}

/// Answers a well-formed key command on `node`, whose state machine is `sm`:
///   LOCALGET reads `sm` as it is now (possibly stale);
///   GET waits for node.async_read_barrier() (ReadIndex: a heartbeat round on the leader, the
///       leader's read index on a follower), then reads `sm`: linearizable, and no log entry;
///   PUT, APPEND and DEL are proposed: only a leader takes them, a follower's not_leader names it.
/// `stopping`: the server is shutting down, and refuses all but LOCALGET.
template <class Node>
asio::awaitable<std::string> answer_key_command(const std::string& command, key_args k, Node& node,
                                                const raft::testing::kv_state_machine& sm, bool stopping) {
  using kv_map = raft::testing::kv_state_machine;
  if (command == "LOCALGET") co_return value_reply(sm.find(std::string(k.key)));
  if (stopping) co_return "ERR stopped";
  if (command == "GET") {
    auto barrier = co_await node.async_read_barrier();
    if (!barrier) co_return error_reply(barrier.error());
    co_return value_reply(sm.find(std::string(k.key)));
  }
  const raft::buffer write = command == "PUT"      ? kv_map::put(k.key, k.value)
                             : command == "APPEND" ? kv_map::append(k.key, k.value)
                                                   : kv_map::del(k.key);
  auto seen = co_await node.async_propose(write.bytes());
  if (!seen) co_return error_reply(seen.error());
  // The state machine answers the value the command saw, "" when the key had none (no value
  // is empty): PUT of a new key is plain OK, DEL of a missing key NOTFOUND.
  if (seen->empty()) co_return command == "DEL" ? "NOTFOUND" : "OK";
  co_return "OK " + *seen;
}

/// The node fields of a STATUS reply: " id=.. role=.. term=.. leader=.. commit=.. applied=..
/// last=.. durable=.. snapshot=..".
inline void write_node_status(std::ostream& os, const raft::node_status& s) {
  os << " id=" << s.id << " role=" << raft::to_string(s.role) << " term=" << s.term << " leader=" << s.leader
     << " commit=" << s.commit_index << " applied=" << s.applied_index << " last=" << s.last_log_index
     << " durable=" << s.durable_index << " snapshot=" << s.snapshot_index;
}

/// The state machine fields of a STATUS reply, last on the line: " keys=.. hash=<hex>".
inline void write_map_status(std::ostream& os, const raft::testing::kv_state_machine& sm) {
  os << " keys=" << sm.data().size() << " hash=" << std::hex << sm.hash();
}

}  // namespace kv
