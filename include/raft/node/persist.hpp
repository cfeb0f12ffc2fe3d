// raft/node/persist.hpp - raft::node: persistence and apply.
//
// Flushes (group commit: many entries per flush), the rounds of the persistence pipeline
// (raft/detail/persistence.hpp), and applying committed entries in order.
// Part of raft/node.hpp, which declares the class and includes every part.
#pragma once

#include "raft/node.hpp"

namespace raft {
inline namespace v1 {

/// In settle(): makes the log's new entries durable now if the storage flushes synchronously;
/// otherwise starts a flush of them, unless one is running (its completion starts the next).
/// A change made outside any event (a compaction, a log reset after an installed snapshot, a
/// bootstrap entry at start) reaches here through a settle() of its own (schedule_settle()).
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::persist_now() {
  if (!persist_pending()) return;
  if constexpr (inline_flush) {
    const index_t target = submit_to_storage();
    storage_.flush_now();  // not timed: it only moves entries in memory
    flushed(target);
  } else {
    start_flush();
  }
}

/// Group commit: everything appended since the last flush goes to storage in one call and
/// becomes durable with one flush. While a flush runs, new entries queue up in the log for the
/// next one, which flush_done() starts. One flush at a time, as the storage concept promises.
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::start_flush() {
  if (flush_in_flight_) return;
  const index_t target = submit_to_storage();
  hard_state_staged_ = false;  // what was staged goes with this flush
  flush_completion done{this, target, std::chrono::steady_clock::now()};
  flush_in_flight_ = true;
  ++running_;  // async_stop() waits for the flush
  starting_flush_ = true;
  try {
    if constexpr (handler_flush)
      storage_.async_flush(std::move(done));
    else
      asio::co_spawn(ex_, storage_.flush(), std::move(done));
  } catch (...) {
    starting_flush_ = false;
    flush_in_flight_ = false;
    --running_;
    throw;
  }
  starting_flush_ = false;
}

/// A flush started by start_flush() completed (an event of its own): the leader counts itself,
/// a follower acknowledges, what was held for term and vote goes out, and settle() starts the
/// next flush if entries arrived meanwhile. A failed flush stops the node (fail-stop).
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::flush_done(std::exception_ptr e, index_t target,
                                                                      std::chrono::steady_clock::time_point started) {
  if (starting_flush_) {  // a storage that completed inside async_flush(): handled after it returns
    asio::post(ex_, detail::resume_fn([this, e = std::move(e), target, started]() mutable {
      flush_done(std::move(e), target, started);
    }));
    return;
  }
  --running_;
  flush_in_flight_ = false;
  const auto took = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started).count());
  metrics_.storage_flush_ns_total += took;
  metrics_.storage_flush_ns_max = std::max(metrics_.storage_flush_ns_max, took);
  if (e) {
    fail(e);
  } else if (!stopping_) {
    handling_ = true;
    try {
      if (holding_ && !hard_state_staged_) release_held();  // nothing staged since: all durable
      flushed(target);
      settle();
    } catch (...) {
      handling_ = false;
      fail(std::current_exception());
    }
  }
  finish_stop_if_idle();
}

/// Hands everything not yet handed over to storage (a log reset after an installed snapshot,
/// new entries, a compaction); returns the index the next flush makes durable.
template <class StateMachine, class Storage, class Transport, class Timer>
inline index_t node<StateMachine, Storage, Transport, Timer>::submit_to_storage() {
  const auto round = persist_.begin_round(log_.last_index(), log_.base_index(), snapshot_index_);
  if constexpr (snapshots) {  // (without snapshots, no round resets or compacts)
    if (round.reset) {
      storage_.truncate_after(round.reset->old_base);
      storage_.compact_through(round.reset->index, round.reset->term);
    }
  }
  append_batch_.clear();
  for (index_t i = round.append_from; i <= round.target; i = i.next()) append_batch_.push_back(log_.at(i));
  if (!append_batch_.empty()) storage_.append(append_batch_);
  if constexpr (snapshots) {
    if (const auto through = round.compact_through) {
      const term_t t = *log_.term_at(*through);
      storage_.compact_through(*through, t);
      log_.compact_through(*through, t);
    }
  }
  return round.target;
}

/// A flush through `target` completed: the leader counts itself, a follower acknowledges.
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::flushed(index_t target) {
  ++metrics_.storage_flushes;
  persist_.flushed(target);
  if (role_ == role::leader)
    maybe_commit();
  else if (ack_owed_)
    acknowledge();
}

/// Applies committed entries in log order through `limit`, exactly once, and completes their
/// proposals.
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::apply_committed(index_t limit) {
  const index_t until = std::min(commit_, limit);
  if (applied_ >= until) return;
  while (applied_ < until && !stopping_) apply(applied_.next());
  if (!apply_waiters_.empty()) wake_apply_waiters();
  maybe_take_snapshot();
}

template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::apply(index_t i) {
  const log_entry& e = log_.at(i);
  applied_ = i;
  ++metrics_.entries_applied;
  if (e.kind != entry_kind::command) return;
  auto value = sm_.apply(i, e.data.bytes());
  // Proposals are queued in index order; one whose slot now holds another term's entry lost.
  while (!pending_.empty() && pending_.front().index <= i) {
    pending_proposal p = std::move(pending_.front());
    pending_.pop_front();
    if (p.index == i && p.term == e.term)
      p.done(std::move(value));
    else
      p.done(error{errc::leadership_lost, leader_});
  }
}

}  // namespace v1
}  // namespace raft
