// raft/options.hpp - a node's settings.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "raft/core/configuration.hpp"
#include "raft/core/types.hpp"
#include "raft/logger.hpp"

namespace raft {
inline namespace v1 {

struct options {
  /// This node's id (required, nonzero).
  node_id id;

  /// The membership a brand-new cluster starts with. Used only when the storage is empty: the
  /// node then writes it as the bootstrap configuration entry (index 1, term 1). Give every
  /// founding member the same value; leave it empty on a node that joins an existing cluster.
  std::optional<configuration> bootstrap;

  /// A follower that hears from no leader for a random time in [min, max) starts an election
  /// (§3.4). The leader sends heartbeats every `heartbeat_interval`; keep it well below min.
  std::chrono::nanoseconds election_timeout_min = std::chrono::milliseconds(150);
  std::chrono::nanoseconds election_timeout_max = std::chrono::milliseconds(300);
  std::chrono::nanoseconds heartbeat_interval = std::chrono::milliseconds(50);

  /// §9.6: ask for pre-votes before incrementing the term, so a node that was cut off cannot
  /// depose a healthy leader when it comes back.
  bool pre_vote = true;
  /// §6.2: a leader that has not heard from a quorum within an election timeout steps down; and
  /// (§4.2.3) a node that hears from a leader ignores vote requests for the minimum election
  /// timeout.
  bool check_quorum = true;

  /// Replication flow control, per follower: entries and bytes in one AppendEntries, and how
  /// many AppendEntries may be outstanding (pipelining) and how many payload bytes in them.
  std::size_t max_entries_per_message = 4096;
  std::size_t max_bytes_per_message = std::size_t{1} << 20;
  std::size_t max_inflight_messages = 64;
  std::size_t max_inflight_bytes = std::size_t{32} << 20;

  /// Proposals waiting to commit; past this, propose() fails with errc::busy.
  std::size_t max_pending_proposals = std::size_t{1} << 20;

  /// Entries applied to the state machine before the apply loop yields to other work.
  std::size_t max_apply_batch = 4096;

  /// Seed of the election-timeout jitter. 0 derives one from the node id.
  std::uint64_t seed = 0;

  /// Where the node reports what it does (silent by default).
  raft::logger logger;
};

/// Why `o` cannot be used, or nullptr if it can.
[[nodiscard]] inline const char* validate(const options& o) noexcept {
  if (o.id == no_node) return "options.id must be nonzero";
  if (o.election_timeout_min <= std::chrono::nanoseconds::zero())
    return "options.election_timeout_min must be positive";
  if (o.election_timeout_max <= o.election_timeout_min)
    return "options.election_timeout_max must exceed election_timeout_min";
  if (o.heartbeat_interval <= std::chrono::nanoseconds::zero() ||
      o.heartbeat_interval >= o.election_timeout_min)
    return "options.heartbeat_interval must be positive and below election_timeout_min";
  if (o.max_entries_per_message == 0 || o.max_bytes_per_message == 0 ||
      o.max_inflight_messages == 0 || o.max_inflight_bytes == 0 || o.max_apply_batch == 0)
    return "options: batch and in-flight limits must be positive";
  if (o.bootstrap) {
    if (const char* why = validate(*o.bootstrap)) return why;
    if (!o.bootstrap->is_member(o.id)) return "options.bootstrap must include options.id";
  }
  return nullptr;
}

}  // namespace v1
}  // namespace raft
