// raft/detail/persistence.hpp - the node's bookkeeping of what its storage holds, pure.
//
// The node keeps its log in memory and hands it to storage in rounds (group commit): every entry
// appended since the last round goes to storage in one call and becomes durable with one flush.
// This type tracks where that pipeline stands, and decides what the next round hands over:
//
//   submitted    entries through here were handed to storage (appended, maybe not flushed)
//   durable      entries through here are durable: a follower may acknowledge them and a
//                leader may count itself for them
//   flush floor  the lowest truncation point seen while a flush was running: a flush that
//                completes makes durable only what survived the truncation
//   compact to   storage (and the log) may drop entries through here: a snapshot covers them
//   log reset    after installing a leader's snapshot that the log does not match, storage must
//                drop its whole log and restart it behind the snapshot, before anything else
//
// Invariants: durable <= submitted; between rounds, flush floor = submitted unless a truncation
// lowered it. The node carries the decisions out (storage calls, the log's own compaction).
#pragma once

#include <algorithm>
#include <optional>
#include <utility>

#include "raft/core/types.hpp"

namespace raft {
inline namespace v1 {
namespace detail {

class persistence_pipeline {
 public:
  /// Storage must drop every entry after `old_base`, then compact through `index` (of `term`):
  /// the log restarts behind an installed snapshot.
  struct log_reset {
    index_t old_base;
    index_t index;
    term_t term;
  };

  /// What one round hands to storage, in this order.
  struct round {
    std::optional<log_reset> reset;            ///< first, a log reset
    index_t append_from;                       ///< then the entries append_from..target (none if
                                               ///< append_from > target)
    std::optional<index_t> compact_through;    ///< then a compaction through here
    index_t target;                            ///< the round's flush makes the log durable through here
  };

  /// Storage returned a log ending at `last`: all of it is durable.
  void recovered(index_t last) noexcept { submitted_ = durable_ = flush_floor_ = last; }

  [[nodiscard]] index_t submitted() const noexcept { return submitted_; }
  [[nodiscard]] index_t durable() const noexcept { return durable_; }

  /// A flush is due even with no new entries (a truncation, a new entry at start).
  void request_flush() noexcept { flush_needed_ = true; }

  /// Whether a round has something to do, for a log ending at `last`, compacted through `base`,
  /// with the newest snapshot through `snapshot`.
  [[nodiscard]] bool pending(index_t last, index_t base, index_t snapshot) const noexcept {
    return submitted_ != last || flush_needed_ || reset_.has_value() || may_compact(base, snapshot);
  }

  /// The in-memory log was truncated after `after`. Returns whether storage holds entries past
  /// it and must truncate them too: entries not handed over yet are simply never handed over,
  /// so the next round always appends right after `after`.
  [[nodiscard]] bool truncated(index_t after) noexcept {
    const bool storage_too = after < submitted_;
    submitted_ = std::min(submitted_, after);
    durable_ = std::min(durable_, after);
    flush_floor_ = std::min(flush_floor_, after);
    flush_needed_ = true;
    return storage_too;
  }

  /// The in-memory log was replaced by one that starts behind a snapshot through `index`; the
  /// log it replaced was compacted through `old_base`. Storage follows in the next round. Until
  /// then, nothing past the snapshot is durable, and the snapshot itself is (it was committed to
  /// storage before the log changed).
  void reset_log(index_t old_base, index_t index, term_t term) noexcept {
    reset_ = log_reset{old_base, index, term};
    submitted_ = durable_ = index;
    flush_floor_ = std::min(flush_floor_, index);
    flush_needed_ = true;
  }

  /// A snapshot covers the log through `through`: storage may drop entries through there. It is
  /// done in a round, once storage holds them and a snapshot covers them.
  void compact_later(index_t through) noexcept { compact_to_ = std::max(compact_to_, through); }

  /// Starts a round for a log ending at `last`, compacted through `base`, with the newest
  /// snapshot through `snapshot`: everything the round must hand to storage.
  [[nodiscard]] round begin_round(index_t last, index_t base, index_t snapshot) noexcept {
    round r{std::exchange(reset_, std::nullopt), submitted_.next(), std::nullopt, last};
    submitted_ = last;
    // Only through what storage holds and a snapshot covers; never past what was applied.
    if (compact_to_ <= last && may_compact(base, snapshot)) r.compact_through = compact_to_;
    compact_to_ = index_t{0};
    flush_needed_ = false;
    flush_floor_ = last;
    return r;
  }

  /// The flush of a round through `target` completed. Returns the new durable index: a
  /// truncation during the flush lowers it.
  index_t flushed(index_t target) noexcept {
    durable_ = std::min(target, flush_floor_);
    return durable_;
  }

 private:
  [[nodiscard]] bool may_compact(index_t base, index_t snapshot) const noexcept {
    return compact_to_ > base && compact_to_ <= snapshot;
  }

  index_t submitted_{0};
  index_t durable_{0};
  index_t flush_floor_{0};
  bool flush_needed_ = false;
  index_t compact_to_{0};
  std::optional<log_reset> reset_;
};

}  // namespace detail
}  // namespace v1
}  // namespace raft
