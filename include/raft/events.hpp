// raft/events.hpp - what a node reports about itself: counters and gauges (node_metrics) and
// the events it hands to `options::on_event`.
#pragma once

#include <cstdint>

#include "raft/core/configuration.hpp"
#include "raft/core/types.hpp"

namespace raft {
inline namespace v1 {

/// Counters (monotonic since start) and gauges (current values). Read with node::metrics() on
/// the node's executor.
struct node_metrics {
  // Gauges.
  term_t term;
  raft::role role = role::follower;
  node_id leader;
  index_t commit_index;
  index_t applied_index;
  index_t last_log_index;
  index_t snapshot_index;        ///< last entry covered by the newest snapshot (0: none)
  std::uint64_t log_entries = 0; ///< entries held in memory (after compaction)
  std::uint64_t pending_proposals = 0;
  std::uint64_t pending_reads = 0;

  // Counters.
  std::uint64_t elections_started = 0;     ///< vote rounds (not pre-vote rounds)
  std::uint64_t pre_votes_started = 0;
  std::uint64_t times_leader = 0;          ///< elections this node won
  std::uint64_t leader_changes = 0;        ///< times the known leader changed to another node
  std::uint64_t proposals_accepted = 0;
  std::uint64_t proposals_refused = 0;
  std::uint64_t entries_committed = 0;     ///< by commit-index advances seen here
  std::uint64_t entries_applied = 0;
  std::uint64_t messages_sent = 0;
  std::uint64_t bytes_sent = 0;            ///< payload plus a fixed header estimate per message
  std::uint64_t append_rejections = 0;     ///< AppendEntries this node rejected
  std::uint64_t snapshots_created = 0;
  std::uint64_t snapshots_sent = 0;        ///< transfers completed to followers
  std::uint64_t snapshot_chunks_sent = 0;
  std::uint64_t snapshots_installed = 0;   ///< received from a leader
  std::uint64_t membership_changes = 0;    ///< configuration entries appended as leader
  std::uint64_t leadership_transfers = 0;  ///< TimeoutNow sent
  std::uint64_t quiesced = 0;              ///< times this node's group went quiet (options::quiesce)
  std::uint64_t woken_for_work = 0;        ///< ... and woke for a proposal, read, transfer or change
  std::uint64_t woken_by_message = 0;      ///< ... for a member's message
  std::uint64_t woken_leader_down = 0;     ///< ... for peer_down() of its leader
  std::uint64_t read_barriers = 0;         ///< async_read_barrier() calls completed successfully
  std::uint64_t lease_reads = 0;           ///< of which served from the lease
  std::uint64_t storage_flushes = 0;
  std::uint64_t storage_flush_ns_total = 0;
  std::uint64_t storage_flush_ns_max = 0;
};

/// What happened.
enum class event_kind : std::uint8_t {
  role_changed,        ///< `role` is the new role, `term` the term
  leader_changed,      ///< `leader` is the new known leader (no_node: none known)
  membership_changed,  ///< `config` is the node's new configuration (latest in its log), `index`
                       ///< its entry (or snapshot) index
  snapshot_created,    ///< a local snapshot through `index` is durable
  snapshot_installed,  ///< a leader's snapshot through `index` replaced the state
};

/// One event. Handed to `options::on_event` on the node's executor, synchronously: keep the
/// handler short, and do not call back into the node from it.
struct node_event {
  event_kind kind;
  node_id node;
  term_t term;
  raft::role role = role::follower;
  node_id leader;
  index_t index;
  configuration config;
};

}  // namespace v1
}  // namespace raft
