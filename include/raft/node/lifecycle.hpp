// raft/node/lifecycle.hpp - raft::node: start-up and shut-down.
//
// Recovery from storage at start(), the node's coroutines (spawn, guarded), fail-stop on an
// error, and async_stop().
// Part of raft/node.hpp, which declares the class and includes every part.
#pragma once

#include "raft/node.hpp"

namespace raft {
inline namespace v1 {

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::recover(persistent_state ps) {
  term_ = ps.state.term;
  voted_for_ = ps.state.voted_for;
  log_ = in_memory_log(ps.base_index, ps.base_term);
  for (auto& e : ps.entries) {
    if (e.index != log_.last_index().next())
      throw std::runtime_error(detail::join({"raft: storage returned a log with a gap before index ", e.index}));
    if (e.term < log_.last_term() || e.term > term_)
      throw std::runtime_error(
          detail::join({"raft: storage returned an entry with an impossible term at index ", e.index}));
    log_.append(std::move(e));
  }
  persist_.recovered(log_.last_index());
  commit_ = applied_ = ps.base_index;
  if constexpr (snapshots) {
    if (auto r = storage_.open_snapshot()) {
      snapshot_meta m = r->meta();
      if (m.index < ps.base_index)
        throw std::runtime_error(detail::join({"raft: the log is compacted through index ", ps.base_index,
                                               " but the newest snapshot ends at ", m.index}));
      restore_state_machine(*r);
      if (log_.term_at(m.index) != m.term) {
        // A crash came between installing a leader's snapshot and resetting the log.
        persist_.reset_log(log_.base_index(), m.index, m.term);
        log_ = in_memory_log(m.index, m.term);
      }
      commit_ = applied_ = m.index;
      snapshot_index_ = m.index;
      snapshot_term_ = m.term;
      snapshot_config_ = std::move(m.config);
    } else if (ps.base_index > index_t{0}) {
      throw std::runtime_error(detail::join({"raft: the log is compacted through index ", ps.base_index,
                                             " but storage holds no snapshot: the state before it is lost"}));
    }
  }
  if (log_.last_index() == index_t{0} && opts_.bootstrap) {
    // A brand-new cluster: every founding member writes the same first entry.
    if (term_ < term_t{1}) {
      term_ = term_t{1};
      persist_hard_state();
    }
    log_.append(log_entry{term_t{1}, index_t{1}, entry_kind::configuration, encode(*opts_.bootstrap)});
    persist_.request_flush();
  }
  reload_configuration();
}

/// Runs `task` as one of the node's coroutines: async_stop() waits for it, and an exception
/// from it stops the node. Spawned with asio::detached (whose co_spawn machinery a program that
/// uses Asio has instantiated already); the bookkeeping is done by guarded().
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::spawn(asio::awaitable<void> task) {
  ++running_;
  asio::co_spawn(ex_, guarded(std::move(task)), asio::detached);
}

template <class StateMachine, class Storage, class Transport, class Timer>
inline asio::awaitable<void> node<StateMachine, Storage, Transport, Timer>::guarded(asio::awaitable<void> task) {
  std::exception_ptr e;
  try {
    co_await std::move(task);
  } catch (...) {
    e = std::current_exception();
  }
  --running_;
  if (e) fail(e);
  finish_stop_if_idle();
}

/// Fail-stop: an error the node cannot recover from (storage failure, a broken invariant).
template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::fail(std::exception_ptr e) {
  if (!failure_) failure_ = e;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    log_line(log_level::error, "node ", opts_.id, " stopping after error: ", ex.what());
  } catch (...) {
    log_line(log_level::error, "node ", opts_.id, " stopping after unknown error");
  }
  begin_stop();
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::begin_stop() {
  if (stopping_) return;
  stopping_ = true;
  round_.reset();
  auto pending = std::move(pending_);
  for (std::size_t i = 0; i < pending.size(); ++i) pending[i].done(error{errc::stopped, leader_});
  fail_reads(errc::stopped);
  if (transfer_) finish_transfer(error{errc::stopped, leader_});
  incoming_.reset();
  transport_.close();
  election_timer_.cancel();
  heartbeat_timer_.cancel();
  commit_signal_.notify();
  round_signal_.notify();
  for (peer* p : peers_) p->wake.notify();
  peers_.clear();
}

/// async_stop()'s caller waits in stop_waiters_ until the last coroutine has finished; it resumes
/// on its own executor, which is kept busy until then.
template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::request_stop(detail::resume_fn resume, const asio::any_io_executor& caller) {
  detail::resume_fn on_node = [this, resume = std::move(resume),
                               work = asio::prefer(caller, asio::execution::outstanding_work.tracked)]() mutable {
    stop_waiters_.push_back([resume = std::move(resume), work = std::move(work)]() mutable {
      asio::post(work, std::move(resume));
    });
    begin_stop();
    finish_stop_if_idle();
  };
  asio::dispatch(ex_, std::move(on_node));
}

/// Once stopping and the last coroutine has finished, async_stop() completes for every caller.
template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::finish_stop_if_idle() {
  if (!stopping_ || running_ > 0 || stop_waiters_.empty()) return;
  auto waiters = std::move(stop_waiters_);
  stop_waiters_.clear();
  for (auto& w : waiters) w();
}

}  // namespace v1
}  // namespace raft
