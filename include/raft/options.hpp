// raft/options.hpp - a node's settings.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>

#include "raft/core/configuration.hpp"
#include "raft/core/types.hpp"
#include "raft/events.hpp"
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

  /// Proposals waiting to commit; past this, async_propose() fails with errc::busy.
  std::size_t max_pending_proposals = std::size_t{1} << 20;

  /// Entries applied to the state machine before the apply loop yields to other work.
  std::size_t max_apply_batch = 4096;

  /// Snapshots (only when the state machine and the storage model the snapshot concepts; see
  /// docs/snapshots.md). A snapshot is taken once `snapshot_entries` entries were applied since
  /// the last one (0: never automatically). The log keeps `snapshot_trailing_entries` entries
  /// before the snapshot's index, so a follower a little behind catches up from the log instead
  /// of a whole snapshot. Snapshots travel in chunks of `snapshot_chunk_bytes`.
  std::uint64_t snapshot_entries = 0;
  std::uint64_t snapshot_trailing_entries = 1024;
  std::size_t snapshot_chunk_bytes = std::size_t{1} << 20;

  /// Lease reads (§6.4.1, opt-in): a leader that a quorum acknowledged within the last
  /// election_timeout_min * (1 - lease_clock_drift) serves async_read_barrier() without a heartbeat
  /// round. Safe only if no clock runs faster than another by more than that fraction, and
  /// needs check_quorum. docs/reads.md explains the risk.
  bool lease_reads = false;
  double lease_clock_drift = 0.1;

  /// Quiescence (opt-in, for processes that run many groups: raft/multi/). A leader whose group
  /// has been idle for `quiesce_after` heartbeat intervals in a row (every member holds its whole
  /// log and acknowledged a heartbeat carrying the commit index; no proposal, read, transfer or
  /// membership change in progress) sends one last heartbeat marked `quiesce` and stops: no more
  /// heartbeats, no CheckQuorum. A follower that gets it stops its election timer. Anything the
  /// group does wakes it: a proposal, a read, a transfer, a change, a message from any member.
  /// A quiesced follower also counts its leader as alive (it refuses votes) until told otherwise:
  /// with quiescence on, something must call node::peer_down() when a member's process stops
  /// answering (raft::group_router's liveness does), or the group of a dead leader stays
  /// leaderless. Safety does not depend on any of this; only when elections start does.
  bool quiesce = false;
  int quiesce_after = 3;
  /// A leader's heartbeat ticks fall on a grid instead of one interval after the last: the
  /// multiples of heartbeat_interval since the clock's epoch plus one of
  /// raft::heartbeat_grid_phases offsets picked by a hash of the election seed
  /// (raft/core/ticks.hpp). The groups of a process that share an offset tick in the same
  /// executor turn, and raft::group_router sends all their heartbeats to a peer in one write:
  /// a few writes per interval for all of them, in bursts small enough not to hold up entries
  /// in flight. For processes that run many groups (give each group its own `seed`); a single
  /// group gains nothing. The first heartbeat of a term still goes out at once. Where groups
  /// can quiesce, quiescence saves more (docs/multi-raft.md).
  bool align_heartbeats = false;

  /// Seed of the election-timeout jitter. 0 derives one from the node id.
  std::uint64_t seed = 0;

  /// Where the node reports what it does (silent by default).
  raft::logger logger;

  /// Called on the node's executor for role, leader, membership and snapshot events (see
  /// raft/events.hpp). Keep it short; it must not call into the node.
  std::function<void(const node_event&)> on_event;
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
  if (o.snapshot_chunk_bytes == 0) return "options.snapshot_chunk_bytes must be positive";
  if (o.quiesce_after < 1) return "options.quiesce_after must be at least 1";
  if (o.lease_reads && !o.check_quorum) return "options.lease_reads needs options.check_quorum";
  if (!(o.lease_clock_drift >= 0.0 && o.lease_clock_drift < 1.0))
    return "options.lease_clock_drift must be in [0, 1)";
  if (o.bootstrap) {
    if (const char* why = validate(*o.bootstrap)) return why;
    if (!o.bootstrap->is_member(o.id)) return "options.bootstrap must include options.id";
  }
  return nullptr;
}

}  // namespace v1
}  // namespace raft
