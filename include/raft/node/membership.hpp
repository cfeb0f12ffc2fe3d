// raft/node/membership.hpp - raft::node: membership changes.
//
// One joint-consensus change (§4.3), awaited by its caller; the entries are planned by
// raft/core/confchange.hpp.
// Part of raft/node.hpp, which declares the class and includes every part.
#pragma once

#include "raft/node.hpp"

namespace raft {
inline namespace v1 {

template <class StateMachine, class Storage, class Transport, class Timer>
template <class MakeTarget>
inline auto node<StateMachine, Storage, Transport, Timer>::membership_change(MakeTarget make_target) -> asio::awaitable<result<index_t>> {
  if (stopping_) co_return error{errc::stopped, leader_};
  if (role_ != role::leader) co_return error{errc::not_leader, leader_};
  if (transfer_) co_return error{errc::transferring, leader_};
  if (changing_membership_) co_return error{errc::change_in_progress, leader_};
  changing_membership_ = true;
  const detail::scope_exit clear_flag{[this] { changing_membership_ = false; }};
  const term_t term = term_;
  while (still_leading(term) && !committed_in_term()) co_await commit_signal_.wait();
  if (!still_leading(term)) co_return error{stopping_ ? errc::stopped : errc::leadership_lost, leader_};
  if (config_.joint() || config_index_ > commit_) co_return error{errc::change_in_progress, leader_};
  result<configuration> target = make_target(config_);
  if (!target) co_return target.error();
  // The entry is planned and validated before it is appended: a leader never appends a
  // configuration that it (or a follower) could not decode.
  membership_step step = plan_membership_change(config_, std::move(*target));
  if (step.refused != nullptr) {
    log_line(log_level::info, "node ", opts_.id, " refuses a membership change: ", step.refused);
    co_return error{errc::invalid_argument, leader_};
  }
  if (step.unchanged) co_return config_index_;
  const index_t first = append_local(entry_kind::configuration, encode(step.entry));
  log_line(log_level::info, "node ", opts_.id, " starts a membership change at index ", first);
  // The leader appends C_new itself once C_old,new commits (leader_after_commit).
  for (;;) {
    if (!config_.joint() && config_index_ >= first && commit_ >= config_index_) co_return config_index_;
    if (!still_leading(term)) co_return error{stopping_ ? errc::stopped : errc::leadership_lost, leader_};
    co_await commit_signal_.wait();
  }
}

}  // namespace v1
}  // namespace raft
