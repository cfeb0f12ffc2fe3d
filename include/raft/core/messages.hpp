// raft/core/messages.hpp - the messages nodes exchange (thesis Figure 3.1, plus PreVote §9.6).
//
// Messages are plain values. A transport may lose, delay, duplicate or reorder them; it must not
// forge or corrupt them (the TCP codec checks framing, the node checks every field it uses).
#pragma once

#include <variant>
#include <vector>

#include "raft/core/entry.hpp"
#include "raft/core/types.hpp"

namespace raft {
inline namespace v1 {

/// RequestVote (§3.4) and its PreVote form (§9.6). A pre-vote asks "would you vote for me in
/// `term`?" without anyone changing term or vote.
struct vote_request {
  term_t term;              ///< candidate's term (for a pre-vote: the term it would campaign in)
  index_t last_log_index;   ///< index of candidate's last log entry (§3.6.1)
  term_t last_log_term;     ///< term of candidate's last log entry (§3.6.1)
  bool pre_vote = false;
  friend bool operator==(const vote_request&, const vote_request&) = default;
};

struct vote_response {
  term_t term;              ///< responder's current term (for a granted pre-vote: the asked term)
  bool granted = false;
  bool pre_vote = false;
  friend bool operator==(const vote_response&, const vote_response&) = default;
};

/// AppendEntries (§3.5); with no entries it is a heartbeat.
struct append_request {
  term_t term;              ///< leader's term
  index_t prev_log_index;   ///< index of the entry immediately preceding `entries`
  term_t prev_log_term;     ///< term of that entry
  index_t leader_commit;    ///< leader's commit index
  std::vector<log_entry> entries;
  friend bool operator==(const append_request&, const append_request&) = default;
};

/// Reply to AppendEntries. On success `match_index` is the highest index the follower has
/// durably stored and knows to match the leader's log. On rejection the hints let the leader
/// skip a whole conflicting term at once (fast backtracking, §3.5).
struct append_response {
  term_t term;              ///< follower's current term
  bool success = false;
  index_t match_index;      ///< success: durable matching prefix
  index_t rejected_index;   ///< rejection: the request's prev_log_index
  index_t conflict_index;   ///< rejection: first index of `conflict_term`, or last index + 1
  term_t conflict_term;     ///< rejection: follower's term at prev_log_index (0: it has no entry)
  friend bool operator==(const append_response&, const append_response&) = default;
};

using message_body = std::variant<vote_request, vote_response, append_request, append_response>;

/// A message with its addresses.
struct message {
  node_id from;
  node_id to;
  message_body body;
  friend bool operator==(const message&, const message&) = default;
};

/// The term a message carries.
[[nodiscard]] inline term_t term_of(const message_body& body) noexcept {
  return std::visit([](const auto& m) { return m.term; }, body);
}

}  // namespace v1
}  // namespace raft
