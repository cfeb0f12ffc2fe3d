// raft/node/reads.hpp - raft::node: linearizable reads.
//
// ReadIndex on the leader (§6.4) with heartbeat rounds and the lease (raft/core/read_index.hpp),
// reads forwarded by followers, and waiting until a read index is applied.
// Part of raft/node.hpp, which declares the class and includes every part.
#pragma once

#include "raft/node.hpp"

namespace raft {
inline namespace v1 {

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::start_read(op_completion<index_t> done) {
  if (stopping_) return refuse(std::move(done), errc::stopped);
  if (role_ == role::leader) {
    wake(&node_metrics::woken_for_work);
    leader_read([this, done = std::move(done)](result<index_t> r) mutable {
      if (!r) return complete_later(std::move(done), std::move(r));
      wait_applied(*r, std::move(done));
    });
    return;
  }
  if (leader_ == no_node) return refuse(std::move(done), errc::not_leader);
  const std::uint64_t id = ++next_read_id_;
  forwarded_.push_back(pending_read{index_t{0}, id, read_deadline(), std::move(done)});
  send(leader_, read_index_request{term_, id});
}

/// Forwarded reads are matched to the leader's answers by id alone. The ids of this
/// incarnation start at a value drawn from the start time and the node's id, so that an
/// answer to a request an earlier incarnation sent in the same term (it crashed and restarted
/// while the answer was on its way) matches none of this incarnation's requests: served, it
/// would give a new read the old read's index, which may lack writes acknowledged since.
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::first_read_id() noexcept {
  std::uint64_t x = static_cast<std::uint64_t>(
                        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count()) ^
                    (opts_.id.value * 0x9E3779B97F4A7C15ull);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;  // splitmix64's finalizer: nearby times, far-apart ids
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  next_read_id_ = x ^ (x >> 31);
}

/// The leader's half of a read: `confirmed` gets a read index once leadership is confirmed.
template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::leader_read(op_completion<index_t> confirmed) {
  if (opts_.lease_reads && committed_in_term() && reads_.lease_holds(Clock::now())) {
    ++metrics_.lease_reads;
    return confirmed(commit_);
  }
  const bool ready = committed_in_term();
  reads_.add(ready ? commit_ : index_t{0}, read_deadline(), std::move(confirmed));
  if (ready) start_round();
}

/// Starts a heartbeat round: every read without one joins it, every follower hears from us.
template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::start_round() {
  reads_.start_round(Clock::now());
  for (peer* p : peers_) {
    p->heartbeat_due = true;
    p->wake.notify();
  }
  confirm_rounds();  // a single voter confirms alone
}

template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::acknowledge_round(peer& p, std::uint64_t round) {
  if (round <= p.acked_round || round > reads_.round()) return;
  p.acked_round = round;
  confirm_rounds();
}

/// The highest round a quorum acknowledged (we acknowledge our own rounds) confirms every
/// read of that round or earlier, and renews the lease from that round's start.
template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::confirm_rounds() {
  const index_t q = quorum_index(config_, [&](node_id v) {
    if (v == opts_.id) return index_t{reads_.round()};
    const peer* p = find_peer(v);
    return index_t{p == nullptr ? 0 : p->acked_round};
  });
  const auto lease = std::chrono::duration_cast<typename Clock::duration>(
      opts_.election_timeout_min * (1.0 - opts_.lease_clock_drift));
  for (auto& r : reads_.confirm(q.value, lease)) r.done(r.index);
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::wait_applied(index_t index, op_completion<index_t> done) {
  if (applied_ >= index) {
    ++metrics_.read_barriers;
    return complete_later(std::move(done), result<index_t>(index));
  }
  apply_waiters_.push_back(pending_read{index, 0, {}, std::move(done)});
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::wake_apply_waiters() {
  std::erase_if(apply_waiters_, [&](pending_read& w) {
    if (w.index > applied_) return false;
    ++metrics_.read_barriers;
    complete_later(std::move(w.done), result<index_t>(w.index));
    return true;
  });
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::on(node_id from, read_index_request r) {
  if (role_ != role::leader || transfer_) {
    send(from, read_index_response{term_, r.id, false, index_t{0}});
    return;
  }
  leader_read([this, from, id = r.id, term = term_](result<index_t> res) {
    if (!still_leading(term)) return;
    send(from, read_index_response{term_, id, res.has_value(), res ? *res : index_t{0}});
  });
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::on(node_id, read_index_response r) {
  auto it = std::find_if(forwarded_.begin(), forwarded_.end(), [&](const auto& f) { return f.tag == r.id; });
  if (it == forwarded_.end()) return;
  auto done = std::move(it->done);
  forwarded_.erase(it);
  if (!r.ok) return complete_later(std::move(done), result<index_t>(error{errc::not_leader, leader_}));
  wait_applied(r.index, std::move(done));
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::expire_forwarded_reads() {
  if (forwarded_.empty()) return;  // (no clock reading for nothing: it runs per leader's message)
  const auto now = Clock::now();
  auto expired = detail::take_front_while(forwarded_, [&](const pending_read& f) { return now >= f.deadline; });
  for (auto& f : expired) complete_later(std::move(f.done), result<index_t>(error{errc::timeout, leader_}));
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::fail_forwarded_reads(errc why) {
  auto all = std::move(forwarded_);
  forwarded_.clear();
  for (auto& f : all) complete_later(std::move(f.done), result<index_t>(error{why, leader_}));
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::fail_reads(errc why) {
  fail_forwarded_reads(why);
  for (auto& r : reads_.take_all()) r.done(error{why, leader_});
  auto waiters = std::move(apply_waiters_);
  apply_waiters_.clear();
  for (auto& w : waiters) complete_later(std::move(w.done), result<index_t>(error{why, leader_}));
}

}  // namespace v1
}  // namespace raft
