// raft/node/quiescence.hpp - raft::node: idle groups go quiet (options::quiesce).
//
// A process that runs thousands of groups cannot afford each group's heartbeats and election
// timers when most groups are idle. With options::quiesce, a leader whose group stayed idle for
// options::quiesce_after heartbeat ticks in a row sends one last heartbeat marked `quiesce` and
// stops ticking (no heartbeats, no CheckQuorum); a follower that accepts that heartbeat, holding
// the leader's whole log and its commit index, stops its election timer and counts the leader as
// alive. The group wakes when it has something to do:
//   - the leader: a proposal, a read, a transfer, a membership change, or any message from a
//     member but an acknowledgement of its whole log (a follower that missed the last heartbeat
//     and campaigns, say); it ticks again at once and gives every follower a full CheckQuorum
//     round;
//   - a follower: any message. From its leader, an AppendEntries is handled as usual; a vote
//     request from its leader means that node no longer leads (it restarted), so the follower
//     forgets it; from another member, the follower starts its timer again but keeps counting the
//     leader as heard from now, so a straggler's campaign cannot depose a live leader;
//   - peer_down(leader): the leader's process stopped answering (raft::group_router's liveness):
//     the follower starts its election timer, and the leader is alive only as long as its last
//     real contact allows, so an election follows within the usual bound.
// Why this is safe: quiescence changes only when heartbeats are sent and when elections start.
// A quiesced follower refuses votes, which never breaks safety; it never votes earlier than an
// active one would. A quiesced leader commits nothing (nothing is proposed), its lease lapses
// (no round confirms it), and it wakes before it serves anything.
// Part of raft/node.hpp, which declares the class and includes every part.
#pragma once

#include "raft/node.hpp"

namespace raft {
inline namespace v1 {

/// Whether the group can go quiet at this heartbeat tick: idle for the quiesce_after-th tick in
/// a row, and every member has acknowledged a heartbeat round sent since the group was last
/// busy, so it knows the commit index. Idle: nothing in progress, the whole log committed and
/// applied, every member holding it, and the commit index as at the last tick. The
/// acknowledgements may come ticks later (a loaded process answers late): waiting for the round
/// of the last tick instead kept a busy machine's groups from ever going quiet, and their
/// heartbeats kept it busy.
template <class StateMachine, class Storage, class Transport, class Timer>
bool node<StateMachine, Storage, Transport, Timer>::ready_to_quiesce() {
  bool idle = !transfer_ && !changing_membership_ && pending_.empty() && reads_.size() == 0 &&
              forwarded_.empty() && apply_waiters_.empty() && !snapshotting_ &&
              commit_ == log_.last_index() && applied_ == commit_ && commit_ >= config_index_ &&
              commit_ == idle_commit_;
  for (peer* p : peers_) idle = idle && p->match == log_.last_index() && !p->snapshot;
  idle_commit_ = commit_;
  if (!idle) {
    idle_rounds_ = 0;
    idle_round_ = reads_.round();  // this tick's heartbeats carry the commit index as it is now
    return false;
  }
  ++idle_rounds_;
  bool acknowledged = true;
  for (peer* p : peers_) acknowledged = acknowledged && p->acked_round >= idle_round_;
  return idle_rounds_ >= opts_.quiesce_after && acknowledged;
}

/// The leader's last heartbeat of an idle group, then silence.
template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::quiesce() {
  quiesced_ = true;
  idle_rounds_ = 0;
  ++metrics_.quiesced;
  for (peer* p : peers_) {
    p->heartbeat_due = false;
    const index_t prev = std::max(p->match, log_.base_index());
    send(p->id, append_request{term_, prev, *log_.term_at(prev), commit_, {}, reads_.round(), true});
  }
  election_deadline_ = time_point::max();  // no CheckQuorum while quiet
  log_line(log_level::debug, "node ", opts_.id, " quiesces in term ", term_, " at index ", commit_);
}

/// Ends quiescence: the leader ticks now and gives every follower a whole CheckQuorum round;
/// a follower's election timer runs again. `why` is the metric that counts the cause.
template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::wake(std::uint64_t node_metrics::*why) {
  if (!quiesced_) return;
  ++(metrics_.*why);
  quiesced_ = false;
  idle_rounds_ = 0;
  if (role_ == role::leader) {
    for (peer* p : peers_) p->active = true;
    set_election_deadline(opts_.election_timeout_min);
    heartbeat_timer_.cancel();  // heartbeat_loop ticks now
  } else {
    reset_election_deadline();
  }
}

/// A message arrives while quiesced (see the file comment for each case).
template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::wake_for(const message& m) {
  if (role_ == role::leader) {
    // An acknowledgement of the whole log (the answer to the last heartbeat) asks for nothing.
    if (const auto* a = m.body.get_if<append_response>();
        a && a->term == term_ && a->success && a->match_index >= log_.last_index())
      return;
    return wake(&node_metrics::woken_by_message);
  }
  if (m.from == leader_) {
    if (const auto* a = m.body.get_if<append_request>(); a && a->quiesce) return;  // still quiet
    const bool campaigns = m.body.holds<vote_request>();
    wake(&node_metrics::woken_by_message);
    if (campaigns) set_leader(no_node);  // it no longer leads: its vote request is judged freely
    return;
  }
  wake(&node_metrics::woken_by_message);
  last_leader_contact_ = Clock::now();  // a member woke up; as far as we know the leader lives
}

/// The follower's side of the leader's last heartbeat: quiet, if it holds all the leader has.
template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::follow_quiesce(const append_request& r) {
  if (!opts_.quiesce || role_ != role::follower || commit_ != log_.last_index() ||
      r.leader_commit != commit_)
    return;
  quiesced_ = true;
  ++metrics_.quiesced;
  election_deadline_ = time_point::max();  // the armed timer fires once more and sleeps on
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::peer_down(node_id id) {
  if (!quiesced_ || role_ == role::leader || leader_ != id) return;
  log_line(log_level::info, "node ", opts_.id, " wakes in term ", term_, ": the process of leader ", id,
           " is down");
  wake(&node_metrics::woken_leader_down);
}

}  // namespace v1
}  // namespace raft
