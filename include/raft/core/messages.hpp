// raft/core/messages.hpp - the messages nodes exchange (thesis Figure 3.1, plus PreVote §9.6).
//
// Messages are plain values. A transport may lose, delay, duplicate or reorder them; it must not
// forge or corrupt them (the TCP codec checks framing, the node checks every field it uses).
#pragma once

#include <array>
#include <cstdint>
#include <variant>
#include <vector>

#include "raft/core/buffer.hpp"
#include "raft/core/entry.hpp"
#include "raft/core/snapshot.hpp"
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
  bool transfer = false;    ///< sent on the leader's TimeoutNow (§3.10): voters that hear from
                            ///< that leader grant it anyway
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
  std::uint64_t round = 0;  ///< the leader's heartbeat round when sent, echoed in the reply; a
                            ///< quorum of echoes confirms leadership for ReadIndex (§6.4)
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
  std::uint64_t round = 0;  ///< the request's round
  friend bool operator==(const append_response&, const append_response&) = default;
};

/// InstallSnapshot (§5.3), one chunk. Every chunk names the whole snapshot, so a follower can
/// tell a resumed transfer from a new one; chunks are sent in order from the follower's
/// acknowledged offset, and a lost chunk is resent from there (never from zero).
struct install_snapshot_request {
  term_t term;              ///< leader's term
  snapshot_meta meta;       ///< which snapshot
  std::uint64_t offset = 0; ///< where `data` starts in the snapshot's bytes
  std::uint64_t size = 0;   ///< the snapshot's total size in bytes
  buffer data;              ///< the chunk
  friend bool operator==(const install_snapshot_request&, const install_snapshot_request&) = default;
};

/// Reply to a chunk: how many bytes of snapshot `index` the follower holds in order (the offset
/// of the next chunk it wants), and whether it has installed the whole snapshot.
struct install_snapshot_response {
  term_t term;
  index_t index;                ///< the snapshot's index
  std::uint64_t next_offset = 0;
  bool installed = false;
  friend bool operator==(const install_snapshot_response&, const install_snapshot_response&) = default;
};

/// Leadership transfer (§3.10): the leader tells an up-to-date target to start an election now.
struct timeout_now {
  term_t term;
  friend bool operator==(const timeout_now&, const timeout_now&) = default;
};

/// A follower asks the leader for a read index (§6.4.1 follower reads); `id` matches the reply.
struct read_index_request {
  term_t term;
  std::uint64_t id = 0;
  friend bool operator==(const read_index_request&, const read_index_request&) = default;
};

/// The leader's answer: on success, `index` is a commit index confirmed by a quorum after the
/// request arrived; the follower may read once it has applied that far.
struct read_index_response {
  term_t term;
  std::uint64_t id = 0;
  bool ok = false;
  index_t index;
  friend bool operator==(const read_index_response&, const read_index_response&) = default;
};

using message_body =
    std::variant<vote_request, vote_response, append_request, append_response, install_snapshot_request,
                 install_snapshot_response, timeout_now, read_index_request, read_index_response>;

/// A message with its addresses.
struct message {
  node_id from;
  node_id to;
  message_body body;
  friend bool operator==(const message&, const message&) = default;
};

namespace detail {
/// Spare entry vectors of AppendEntries messages, per thread. Whoever builds a message takes one
/// (send_append, the codec's decoder), whoever is done with one gives it back (the follower once
/// the entries are in its log, the TCP writer once they are encoded): in steady state messages
/// reuse the same few vectors instead of allocating one each.
class entry_vectors {
 public:
  [[nodiscard]] static std::vector<log_entry> take() {
    auto& p = pool();
    if (p.count == 0) return {};
    return std::move(p.spare[--p.count]);
  }
  static void give(std::vector<log_entry>&& v) {
    v.clear();
    auto& p = pool();
    if (v.capacity() == 0 || v.capacity() > max_capacity || p.count == max_spares) return;
    p.spare[p.count++] = std::move(v);
  }

 private:
  static constexpr std::size_t max_spares = 64;
  static constexpr std::size_t max_capacity = 4096;
  struct spares {
    std::array<std::vector<log_entry>, max_spares> spare;  ///< [0, count) hold capacity
    std::size_t count = 0;
  };
  static spares& pool() {
    thread_local spares p;
    return p;
  }
};
}  // namespace detail

/// Gives the entry vector of an AppendEntries back for reuse (see detail::entry_vectors).
inline void recycle(message& m) {
  if (auto* r = std::get_if<append_request>(&m.body)) detail::entry_vectors::give(std::move(r->entries));
}

/// The term a message carries.
[[nodiscard]] inline term_t term_of(const message_body& body) noexcept {
  // A switch rather than std::visit (less to instantiate in every translation unit).
  static_assert(std::variant_size_v<message_body> == 9, "a new message type needs a case here");
  switch (body.index()) {
    case 0: return std::get_if<0>(&body)->term;
    case 1: return std::get_if<1>(&body)->term;
    case 2: return std::get_if<2>(&body)->term;
    case 3: return std::get_if<3>(&body)->term;
    case 4: return std::get_if<4>(&body)->term;
    case 5: return std::get_if<5>(&body)->term;
    case 6: return std::get_if<6>(&body)->term;
    case 7: return std::get_if<7>(&body)->term;
    case 8: return std::get_if<8>(&body)->term;
  }
  return term_t{0};
}

}  // namespace v1
}  // namespace raft
