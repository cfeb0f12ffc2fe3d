// raft/node/receive.hpp - raft::node: receiving and the end of every event.
//
// The receive loop (or deliver(), for a transport that hands messages over itself), step()
// (every message goes through it), terms (§3.3), and settle(), which ends every event: apply,
// persist, send.
// Part of raft/node.hpp, which declares the class and includes every part.
#pragma once

#include "raft/node.hpp"

namespace raft {
inline namespace v1 {

template <class StateMachine, class Storage, class Transport, class Timer>
inline asio::awaitable<void> node<StateMachine, Storage, Transport, Timer>::receive_loop() {
  std::vector<message> batch;
  while (!stopping_) {
    batch.clear();
    if (!co_await transport_.receive(batch)) break;
    handling_ = true;
    for (auto& m : batch) {
      if (stopping_) break;
      step(std::move(m));
      recycle(m);  // its entry vector serves the next message
    }
    settle();
  }
}

/// A message from a transport that hands messages over (instead of receive_loop), on the node's
/// executor: the batch it belongs to is one event, which end_delivery() ends.
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::deliver(message& m) noexcept {
  if (stopping_) return;
  handling_ = true;
  try {
    step(std::move(m));
    recycle(m);
  } catch (...) {
    handling_ = false;
    fail(std::current_exception());
  }
}

template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::end_delivery() noexcept {
  if (handling_) settle_or_fail();
  finish_stop_if_idle();
}

/// settle() outside a coroutine (whose exceptions guarded() would catch): an exception stops the
/// node.
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::settle_or_fail() {
  try {
    handling_ = true;
    settle();
  } catch (...) {
    handling_ = false;
    fail(std::current_exception());
  }
}

/// The end of every event the node handles (a batch of messages, a flush, a proposal made
/// from outside the node's handlers): applies what committed and completes those proposals,
/// hands the log's new entries to storage (flushed right here when the storage flushes
/// synchronously), then sends every follower what it lacks. Proposals completed here that
/// propose again are persisted and sent in the same pass, so a proposal's round trip costs no
/// extra trip through the executor, and everything one event caused travels together.
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::settle() {
  assert(handling_);
  const index_t limit = applied_ + opts_.max_apply_batch;
  for (;;) {
    apply_committed(limit);
    persist_now();  // may advance the commit index (a leader counting itself)
    if (applied_ >= commit_ || applied_ >= limit || stopping_) break;
  }
  if (role_ == role::leader && !stopping_)
    for (peer* p : peers_) send_entries(*p);
  if constexpr (batching_transport) transport_.flush();  // what this event sent goes out now
  log_.reclaim(detail::reclaim_slice);  // entries a compaction dropped are freed a slice per event
  handling_ = false;
  if (applied_ < commit_) schedule_settle();  // a long backlog: the rest later, letting others run
}

/// Work done outside any event (a proposal from a client's coroutine, a commit index moved by
/// an installed snapshot, an apply backlog left by settle()) gets one settle() of its own,
/// posted: a burst of such calls shares it.
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::schedule_settle() {
  if (handling_ || settle_posted_ || stopping_) return;
  settle_posted_ = true;
  ++running_;
  // Posted type-erased, as detail::signal posts its waiters: one instantiation of asio::post.
  asio::post(ex_, detail::resume_fn([this] {
    --running_;
    settle_posted_ = false;
    if (!stopping_) settle_or_fail();
    finish_stop_if_idle();
  }));
}

template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::step(message&& m) {
  if (m.to != opts_.id || m.from == opts_.id || m.from == no_node) return;
  if (quiesced_) wake_for(m);
  const term_t t = term_of(m.body);
  if (t != term_ && !handle_other_term(m, t)) return;
  m.body.visit([this, from = m.from](auto& b) { this->on(from, std::move(b)); });
}

/// A message whose term is not ours (rare: once per term change). Returns whether step()
/// goes on to handle it.
template <class StateMachine, class Storage, class Transport, class Timer>
bool node<StateMachine, Storage, Transport, Timer>::handle_other_term(const message& m, term_t t) {
  if (t.value == std::numeric_limits<std::uint64_t>::max()) {
    // No real cluster gets there; adopting it would wrap the term to 0 at the next election.
    log_line(log_level::warning, "node ", opts_.id, " drops a message from ", m.from,
             " with the largest possible term");
    return false;
  }
  const bool from_leader = m.body.holds<append_request>() ||
                           m.body.holds<install_snapshot_request>();
  if (t > term_) {
    // Figure 3.1 "Rules for all servers": a higher term makes us a follower in it, except for
    // a pre-vote request (asks about a future term, changes nothing, §9.6), a granted pre-vote
    // reply (echoes the term we asked about), and a vote request while we hear from a live
    // leader (§4.2.3: ignored, so a disruptive server cannot depose it; a vote request sent on
    // the leader's own TimeoutNow is the exception, §3.10).
    if (const auto* r = m.body.get_if<vote_request>()) {
      if (!r->pre_vote) {
        if (opts_.check_quorum && !r->transfer && leader_is_alive()) {
          log_line(log_level::debug, "node ", opts_.id, " ignores vote request from ",
                   m.from, " for term ", t, ": leader ", leader_, " is alive");
          return false;
        }
        become_follower(t, no_node);
      }
    } else if (const auto* v = m.body.get_if<vote_response>(); v && v->pre_vote && v->granted) {
      // a granted pre-vote echoes the future term we asked about: counted below
    } else {
      become_follower(t, from_leader ? m.from : no_node);
    }
  } else if (t < term_) {
    // A stale sender learns our term from the reply and steps down; stale replies are dropped.
    if (const auto* r = m.body.get_if<append_request>()) {
      send(m.from, append_response{term_, false, index_t{0}, r->prev_log_index, index_t{0}, term_t{0}, r->round});
    } else if (const auto* v = m.body.get_if<vote_request>()) {
      send(m.from, vote_response{term_, false, v->pre_vote});
    } else if (const auto* i = m.body.get_if<install_snapshot_request>()) {
      send(m.from, install_snapshot_response{term_, i->meta.index, 0, false});
    } else if (const auto* q = m.body.get_if<read_index_request>()) {
      send(m.from, read_index_response{term_, q->id, false, index_t{0}});
    }
    return false;
  }
  return true;
}

}  // namespace v1
}  // namespace raft
