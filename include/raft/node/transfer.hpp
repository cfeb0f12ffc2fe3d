// raft/node/transfer.hpp - raft::node: leadership transfer.
//
// Leadership transfer (§3.10): catching the target up, TimeoutNow, the transfer's deadline.
// Part of raft/node.hpp, which declares the class and includes every part.
#pragma once

#include "raft/node.hpp"

namespace raft {
inline namespace v1 {

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::start_transfer(node_id target, op_completion<node_id> done) {
  if (stopping_) return refuse(std::move(done), errc::stopped);
  if (role_ != role::leader) return refuse(std::move(done), errc::not_leader);
  if (transfer_) return refuse(std::move(done), errc::transferring);
  if (target == opts_.id) return complete_later(std::move(done), result<node_id>(opts_.id));
  peer* const to = find_peer(target);
  if (!config_.is_voter(target) || to == nullptr) return refuse(std::move(done), errc::invalid_argument);
  wake(&node_metrics::woken_for_work);
  log_line(log_level::info, "node ", opts_.id, " transfers leadership to ", target);
  transfer_ = transfer_state{target, term_, Clock::now() + std::chrono::duration_cast<typename Clock::duration>(
                                                                 opts_.election_timeout_max),
                             std::move(done)};
  peer& p = *to;
  maybe_send_timeout_now(p);
  p.wake.notify();
}

/// The transfer target gets TimeoutNow once its log matches ours. From then on this leader
/// serves no lease reads in this term: voters grant the target's vote despite having heard
/// from us (§3.10), so a lease no longer proves that no other leader exists, even after the
/// transfer timed out (a TimeoutNow delivered late can still elect the target).
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::maybe_send_timeout_now(peer& p) {
  if (!transfer_ || transfer_->target != p.id || p.match != log_.last_index()) return;
  ++metrics_.leadership_transfers;
  reads_.revoke_lease();
  send(p.id, timeout_now{term_});
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::on(node_id from, timeout_now) {
  if (role_ == role::leader || from != leader_ || !config_.is_voter(opts_.id)) return;
  log_line(log_level::info, "node ", opts_.id, " got TimeoutNow from ", from);
  reset_election_deadline();
  spawn(campaign(false, true));
}

/// Leader housekeeping on every heartbeat tick: abandon a transfer and reads that ran out of time.
template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::expire_leader_work() {
  const auto now = Clock::now();
  if (transfer_ && now >= transfer_->deadline) {
    log_line(log_level::info, "node ", opts_.id, " gives up transferring leadership to ",
             transfer_->target);
    finish_transfer(error{errc::timeout, leader_});
  } else if (transfer_) {
    if (peer* p = find_peer(transfer_->target)) maybe_send_timeout_now(*p);
  }
  for (auto& r : reads_.take_expired(now)) r.done(error{errc::timeout, leader_});
}

}  // namespace v1
}  // namespace raft
