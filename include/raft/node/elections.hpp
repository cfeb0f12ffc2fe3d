// raft/node/elections.hpp - raft::node: elections and leadership.
//
// The election timer and CheckQuorum (§6.2), PreVote and vote rounds (§3.4, §9.6), becoming
// follower or leader, and the leader's set of peers.
// Part of raft/node.hpp, which declares the class and includes every part.
#pragma once

#include "raft/node.hpp"

namespace raft {
inline namespace v1 {

template <class StateMachine, class Storage, class Transport, class Timer>
inline bool node<StateMachine, Storage, Transport, Timer>::leader_is_alive() const {
  if (role_ == role::leader) return true;
  if (quiesced_) return leader_ != no_node;  // quiet, not dead: peer_down() says when it is
  return leader_ != no_node && Clock::now() - last_leader_contact_ < opts_.election_timeout_min;
}

template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::reset_election_deadline(time_point now) {
  const auto spread = (opts_.election_timeout_max - opts_.election_timeout_min).count();
  const auto jitter = static_cast<std::int64_t>(rng_.below(static_cast<std::uint64_t>(spread)));
  set_election_deadline(opts_.election_timeout_min + std::chrono::nanoseconds(jitter), now);
}

/// Moves the election deadline to `after` from `now`. The timer is re-armed lazily when it
/// fires; only a deadline earlier than the armed one needs to wake it now.
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::set_election_deadline(std::chrono::nanoseconds after,
                                                                                 time_point now) {
  election_deadline_ = now + std::chrono::duration_cast<typename Clock::duration>(after);
  if (election_deadline_ < armed_deadline_) election_timer_.cancel();
}

/// Re-arms to the latest deadline instead of being cancelled on every heartbeat.
template <class StateMachine, class Storage, class Transport, class Timer>
asio::awaitable<void> node<StateMachine, Storage, Transport, Timer>::election_timer() {
  while (!stopping_) {
    armed_deadline_ = election_deadline_;
    election_timer_.expires_at(armed_deadline_);
    co_await detail::wait_for(election_timer_);
    if (stopping_) break;
    if (Clock::now() < election_deadline_) continue;  // the deadline moved while we slept
    on_election_timeout();
  }
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::on_election_timeout() {
  if (quiesced_) return;  // its deadline is the end of time; a wake() sets a new one
  if (role_ == role::leader) {
    // §6.2 CheckQuorum: step down unless a quorum was heard from during the last timeout.
    set_election_deadline(opts_.election_timeout_min);
    if (!opts_.check_quorum) return;
    const auto heard = quorum_vote(config_, [&](node_id v) -> std::optional<bool> {
      if (v == opts_.id) return true;
      const peer* p = find_peer(v);
      return p != nullptr && p->active;
    });
    for (peer* p : peers_) p->active = false;
    if (heard != vote_result::won) {
      log_line(log_level::info, "node ", opts_.id, " steps down in term ", term_,
               ": no quorum heard within an election timeout");
      become_follower(term_, no_node);
    }
    return;
  }
  reset_election_deadline();
  expire_forwarded_reads();
  if (transfer_) finish_transfer(no_node);  // stepped down; no leader yet
  if (!may_campaign()) return;  // learners and removed nodes do not campaign
  spawn(campaign(opts_.pre_vote, false));
}

/// Whether this node starts elections: a voter of its latest configuration does. So does a
/// node that this configuration removes or demotes while it is not known to be committed, if
/// it was a voter of the configuration before: it may hold one of the only copies of the
/// entry (a leader that is not in C_new replicates C_new until it commits, §4.2.2), and
/// without it no one can be elected (the others lack the entry, and it refuses them its
/// vote). Elected, it counts the votes of the new configuration only, commits it, and steps
/// down (leader_after_commit), like a leader that removed itself.
template <class StateMachine, class Storage, class Transport, class Timer>
inline bool node<StateMachine, Storage, Transport, Timer>::may_campaign() const {
  if (config_.is_voter(opts_.id)) return true;
  if (commit_ >= config_index_) return false;
  return config_at(config_index_.prev()).first.is_voter(opts_.id);
}

/// An election: a pre-vote round (if `pre_vote`) asks whether we could win the next term
/// without changing anyone's term; if it wins, the real round follows. Replies are counted as
/// they arrive (on(vote_response)) and a round ends as soon as its outcome is decided, or when
/// a newer round, a leader or a higher term supersedes it.
template <class StateMachine, class Storage, class Transport, class Timer>
asio::awaitable<void> node<StateMachine, Storage, Transport, Timer>::campaign(bool pre_vote, bool transfer) {
  for (;;) {
    const std::uint64_t id = open_round(pre_vote, transfer);
    vote_result outcome = vote_result::pending;
    for (;;) {
      if (stopping_ || !round_ || round_->id != id) co_return;  // superseded
      outcome = quorum_vote(config_, [&](node_id v) { return round_->answer(v); });
      if (outcome != vote_result::pending) break;
      co_await round_signal_.wait();
    }
    round_.reset();
    if (outcome == vote_result::lost) {
      if (pre_vote) set_role(role::follower);  // wait for the next timeout; nothing changed
      co_return;
    }
    if (!pre_vote) {
      become_leader();
      co_return;
    }
    pre_vote = transfer = false;  // the pre-vote won: the real round follows
  }
}

/// Starts a round of campaign(): becomes (pre-)candidate and asks every voter. Returns the
/// round's id.
template <class StateMachine, class Storage, class Transport, class Timer>
std::uint64_t node<StateMachine, Storage, Transport, Timer>::open_round(bool pre_vote, bool transfer) {
  const term_t round_term = term_.next();
  set_leader(no_node);  // we stopped hearing from it: stop naming it in hints
  if (pre_vote) {
    set_role(role::pre_candidate);
    ++metrics_.pre_votes_started;
  } else {
    // §3.4: increment the term, vote for self, persist both before asking anyone.
    set_role(role::candidate);
    term_ = round_term;
    voted_for_ = opts_.id;
    verified_ = index_t{0};
    persist_hard_state();
    fail_forwarded_reads(errc::leadership_lost);
    leader_round_ = 0;
    ++metrics_.elections_started;
  }
  const std::uint64_t id = ++round_seq_;
  round_ = election_round{id, pre_vote, round_term, {opts_.id}, {}};
  round_signal_.notify();  // a round this one replaces ends now
  log_line(log_level::info, "node ", opts_.id, " starts ", pre_vote ? "pre-vote" : "election",
           " for term ", round_term, transfer ? " (leadership transfer)" : "");
  for (node_id v : config_.all_members())
    if (v != opts_.id && config_.is_voter(v))
      send(v, vote_request{round_term, log_.last_index(), log_.last_term(), pre_vote, transfer});
  return id;
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::on(node_id from, vote_request r) {
  // A vote request sent on the leader's TimeoutNow may take over from a live leader (§3.10).
  const voter_state me{term_, voted_for_, log_.last_term(), log_.last_index(),
                       !r.transfer && leader_is_alive()};
  const bool granted = should_grant_vote(me, r, from);
  if (granted && !r.pre_vote) {
    voted_for_ = from;
    persist_hard_state();  // before the reply leaves
    reset_election_deadline();
  }
  // A granted pre-vote echoes the asked term; every other reply carries ours, so a
  // pre-candidate behind us learns our term from a refusal.
  send(from, vote_response{granted && r.pre_vote ? r.term : term_, granted, r.pre_vote});
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::on(node_id from, vote_response r) {
  if (!round_ || r.pre_vote != round_->pre_vote) return;
  // A grant names the round's term. A pre-vote refusal carries the voter's term, which is not
  // above ours (a higher one made us a follower in step()), so it counts against the round.
  const bool for_this_round = r.granted || !r.pre_vote ? r.term == round_->term : true;
  if (!for_this_round) return;
  if (!config_.is_voter(from)) return;
  round_->record(from, r.granted);  // one answer per voter per round
  round_signal_.notify();
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::become_follower(term_t term, node_id leader) {
  if (term > term_) {
    term_ = term;
    voted_for_ = no_node;
    verified_ = index_t{0};
    persist_hard_state();
    fail_forwarded_reads(errc::leadership_lost);  // their answers would carry the old term
    leader_round_ = 0;  // rounds are numbered per leader and term
  }
  const bool was_leader = role_ == role::leader;
  if (quiesced_) {  // a new term or a new leader: the group is not quiet
    quiesced_ = false;
    if (!was_leader) reset_election_deadline();
  }
  if (role_ != role::follower || leader_ != leader)
    log_line(log_level::info, "node ", opts_.id, " is follower in term ", term_,
             leader != no_node ? " of leader " : "", leader != no_node ? detail::log_part(leader) : "");
  set_role(role::follower);
  set_leader(leader);
  if (round_) {
    round_.reset();
    round_signal_.notify();
  }
  if (was_leader) {
    stop_leading();
    reset_election_deadline();
  }
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::become_leader() {
  set_role(role::leader);
  set_leader(opts_.id);
  ++metrics_.times_leader;
  log_line(log_level::info, "node ", opts_.id, " is leader in term ", term_);
  reads_.reset();
  idle_rounds_ = 0;
  idle_commit_ = index_t{0};  // quiescence: the first tick counts as busy, and its round must be acknowledged
  sync_peers();
  // §6.4: a no-op entry of the new term lets earlier entries commit (Figure 3.7) and tells the
  // leader which entries are committed.
  append_local(entry_kind::noop, buffer{});
  set_election_deadline(opts_.election_timeout_min);  // the first CheckQuorum round
  spawn(heartbeat_loop(term_));
}

/// While leading: one replicator per member of the latest configuration (§4.1), no more.
template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::sync_peers() {
  if (role_ != role::leader) return;
  const auto members = config_.all_members();
  for (node_id m : members) {
    if (m == opts_.id || find_peer(m) != nullptr) continue;
    // Probe from our last entry: the first send tells whether the follower has it (§3.5).
    auto p = std::make_unique<peer>(m, ex_, std::max(log_.last_index(), log_.base_index().next()));
    p->active = true;  // give every follower one full timeout before CheckQuorum counts it out
    peer* const added = p.get();
    spawn(replicate_to(std::move(p), term_));
    auto at = peers_.begin();
    while (at != peers_.end() && (*at)->id < m) ++at;
    peers_.insert(at, added);
  }
  std::erase_if(peers_, [&](peer* p) {
    if (std::binary_search(members.begin(), members.end(), p->id)) return false;
    p->removed = true;
    p->wake.notify();
    return true;
  });
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::stop_leading() {
  for (peer* p : peers_) p->wake.notify();
  peers_.clear();
  heartbeat_timer_.cancel();
  // Proposals not yet committed may or may not commit under the next leader.
  detail::chunked_deque<pending_proposal> lost;  // the queue's type: no other to instantiate
  while (!pending_.empty() && pending_.back().index > commit_) {
    lost.push_back(std::move(pending_.back()));
    pending_.pop_back();
  }
  for (std::size_t i = 0; i < lost.size(); ++i) lost[i].done(error{errc::leadership_lost, leader_});
  for (auto& r : reads_.take_all()) r.done(error{errc::leadership_lost, leader_});
  if (transfer_) {
    // Stepping down for a newer term is the transfer's success; it completes once the new
    // leader is known (set_leader), or at the next election timeout without it.
    if (term_ <= transfer_->term)
      finish_transfer(error{errc::leadership_lost, leader_});
    else if (leader_ != no_node)
      finish_transfer(leader_);
  }
  commit_signal_.notify();  // membership changes in flight notice
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::set_role(raft::role r) {
  if (r == role_) return;
  role_ = r;
  emit(event_kind::role_changed);
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::set_leader(node_id l) {
  if (l == leader_) return;
  leader_ = l;
  if (l != no_node) ++metrics_.leader_changes;
  emit(event_kind::leader_changed);
  if (transfer_ && role_ != role::leader && l != no_node) finish_transfer(l);
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::emit(event_kind kind, index_t index) {
  if (!opts_.on_event) return;
  opts_.on_event(node_event{kind, opts_.id, term_, role_, leader_, index,
                            kind == event_kind::membership_changed ? config_ : configuration{}});
}

/// The follower `id` while this node leads, else null. A linear search: a cluster has a
/// handful of members.
template <class StateMachine, class Storage, class Transport, class Timer>
inline auto node<StateMachine, Storage, Transport, Timer>::find_peer(node_id id) const noexcept -> peer* {
  for (peer* p : peers_)
    if (p->id == id) return p;
  return nullptr;
}

}  // namespace v1
}  // namespace raft
