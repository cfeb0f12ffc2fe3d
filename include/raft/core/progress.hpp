// raft/core/progress.hpp - the leader's view of one follower's log, and the flow control of what
// it sends that follower (§3.5), pure.
//
// A follower is in one of three states:
//   probe      its position is unknown: one AppendEntries at a time, moving `next` back on each
//              rejection (fast backtracking) until one is accepted;
//   replicate  the last probe landed: AppendEntries are pipelined, `next` moves on as they are
//              sent, up to a window of messages and bytes in flight;
//   snapshot   it needs entries the leader compacted: the node streams its snapshot instead
//              (that transfer, being I/O, is the node's), and probes again once it is installed.
// Invariant: match < next.
#pragma once

#include <cstddef>
#include <utility>

#include "raft/detail/chunked_deque.hpp"
#include "raft/core/types.hpp"

namespace raft {
inline namespace v1 {

struct progress {
  explicit progress(index_t next_index) noexcept : next(next_index) {}

  index_t match{0};      ///< highest entry known to be durably stored on the follower
  index_t next;          ///< next entry to send
  bool probing = true;   ///< position unknown: one AppendEntries at a time, no pipelining
  detail::chunked_deque<std::pair<index_t, std::size_t>> inflight;  ///< last index, bytes per unacked send
  std::size_t inflight_bytes = 0;
  int ticks_without_ack = 0;  ///< heartbeat ticks with sends outstanding and nothing acknowledged

  /// Whether another AppendEntries may go out: while probing, only when nothing is in flight;
  /// else while fewer than `max_messages` messages and `max_bytes` bytes are.
  [[nodiscard]] bool can_send(std::size_t max_messages, std::size_t max_bytes) const noexcept {
    if (probing) return inflight.empty();
    return inflight.size() < max_messages && inflight_bytes < max_bytes;
  }

  /// An AppendEntries ending at `last` with `bytes` of entries went out. While replicating,
  /// `next` moves past it at once (pipelining: success is assumed, a rejection corrects it).
  void sent(index_t last, std::size_t bytes) {
    inflight.emplace_back(last, bytes);
    inflight_bytes += bytes;
    if (!probing) next = last.next();
  }

  /// Probes again from `from`: what is in flight no longer counts.
  void probe(index_t from) noexcept {
    probing = true;
    next = from;
    forget_inflight();
    ticks_without_ack = 0;
  }

  /// Nothing in flight counts any more (a snapshot is sent instead, or a probe landed).
  void forget_inflight() noexcept {
    inflight.clear();
    inflight_bytes = 0;
  }

  /// The follower durably holds everything through `m`, matching the leader. Returns whether
  /// that moved `match` (then what it covers leaves the window). Call caught_up() after.
  bool acknowledged(index_t m) {
    if (m <= match) return false;
    match = m;
    ticks_without_ack = 0;
    while (!inflight.empty() && inflight.front().first <= match) {
      inflight_bytes -= inflight.front().second;
      inflight.pop_front();
    }
    return true;
  }

  /// After an acknowledgement: a probe that landed (`match` reaches `next`) starts replicating,
  /// and `next` is never at or below `match`.
  void caught_up() noexcept {
    if (probing && match.next() >= next) {
      probing = false;
      forget_inflight();
    }
    if (next <= match) next = match.next();
  }

  /// Whether a rejection of the AppendEntries whose previous entry was `rejected_index` is
  /// about what is being sent now: one about an entry known to match, or (while probing) about
  /// another probe than the last, is stale and ignored.
  [[nodiscard]] bool rejection_counts(index_t rejected_index) const noexcept {
    if (rejected_index <= match) return false;
    return !probing || rejected_index == next.prev();
  }

  /// A heartbeat tick. Sends outstanding and nothing acknowledged for a second tick: a message
  /// or its reply was lost; probe again (from `next` while probing, else right after `match`).
  /// Returns whether it did.
  bool tick() noexcept {
    if (inflight.empty() || ++ticks_without_ack < 2) return false;
    probe(probing ? next : match.next());
    return true;
  }
};

}  // namespace v1
}  // namespace raft
