// raft/node/replication.hpp - raft::node: log replication.
//
// Leader side (§3.5): proposals, one replicator per follower, heartbeats, the commit index.
// Follower side (Figure 3.1): AppendEntries, truncation, the configuration in effect (§4.1).
// Part of raft/node.hpp, which declares the class and includes every part.
#pragma once

#include "raft/node.hpp"

namespace raft {
inline namespace v1 {

// ---------------------------------------------------------------------------------------------
// Leader side.

template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::start_proposal(buffer command, completion done) {
  if (const auto why = proposal_refusal()) return refuse(std::move(done), *why);
  ++metrics_.proposals_accepted;
  const index_t index = append_local(entry_kind::command, std::move(command));
  pending_.push_back(pending_proposal{index, term_, std::move(done)});
}

/// Why a proposal is refused on arrival, if it is.
template <class StateMachine, class Storage, class Transport, class Timer>
inline auto node<StateMachine, Storage, Transport, Timer>::proposal_refusal() const noexcept -> std::optional<errc> {
  if (stopping_) return errc::stopped;
  if (role_ != role::leader) return errc::not_leader;
  if (transfer_) return errc::transferring;
  if (pending_.size() >= opts_.max_pending_proposals) return errc::busy;
  return std::nullopt;
}

/// Appends an entry of the current term to the leader's log. Storage and followers receive it
/// in parallel (§10.2.1); the leader counts itself for it only once it is durable.
template <class StateMachine, class Storage, class Transport, class Timer>
inline index_t node<StateMachine, Storage, Transport, Timer>::append_local(entry_kind kind, buffer data) {
  if (quiesced_) wake(&node_metrics::woken_for_work);
  const index_t index = log_.last_index().next();
  log_.append(log_entry{term_, index, kind, std::move(data)});
  if (kind == entry_kind::configuration) {
    ++metrics_.membership_changes;
    reload_configuration();
  }
  schedule_settle();  // persisted and sent at the end of the current event
  return index;
}

template <class StateMachine, class Storage, class Transport, class Timer>
asio::awaitable<void> node<StateMachine, Storage, Transport, Timer>::heartbeat_loop(term_t term) {
  while (still_leading(term)) {
    if (quiesced_) {  // until wake() cancels the wait
      heartbeat_timer_.expires_at(time_point::max());
      co_await detail::wait_for(heartbeat_timer_);
      continue;
    }
    start_round();
    for (peer* p : peers_) {
      p->heartbeat_due = true;
      // Sends outstanding and no progress for a whole interval: a message or its reply was
      // lost. Resend the probe, or everything after the last known match.
      p->tick();
      if (p->snapshot) p->snapshot->inflight = false;  // resend the unacknowledged chunk
      p->wake.notify();
    }
    expire_leader_work();
    if (!still_leading(term)) break;
    if (opts_.quiesce && ready_to_quiesce()) {
      quiesce();
      continue;
    }
    const auto interval = std::chrono::duration_cast<typename Clock::duration>(opts_.heartbeat_interval);
    if (opts_.align_heartbeats)
      heartbeat_timer_.expires_at(next_grid_tick(Clock::now(), interval, heartbeat_offset_));
    else
      heartbeat_timer_.expires_after(interval);
    co_await detail::wait_for(heartbeat_timer_);
  }
}

/// Keeps one follower's log in line with ours: sends what it lacks, up to the flow-control
/// window, then sleeps until there is news (new entries, an ack, a heartbeat tick). A
/// follower that needs entries we compacted gets the snapshot instead (§5.3).
template <class StateMachine, class Storage, class Transport, class Timer>
inline asio::awaitable<void> node<StateMachine, Storage, Transport, Timer>::replicate_to(std::unique_ptr<peer> p, term_t term) {
  while (still_leading(term) && !p->removed) {
    if (p->next <= log_.base_index()) {
      if constexpr (snapshots) {
        if (!p->snapshot || !p->snapshot->inflight) send_snapshot_chunk(*p);
      }
      p->heartbeat_due = false;
      co_await p->wake.wait();
      continue;
    }
    send_entries(*p);
    if (p->heartbeat_due) send_heartbeat(*p);  // nothing was sent: an AppendEntries is one
    co_await p->wake.wait();
  }
}

/// Sends the follower what it lacks, up to the flow-control window (§3.5 pipelining). One
/// that needs compacted entries gets the snapshot from replicate_to().
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::send_entries(peer& p) {
  if (p.next <= log_.base_index()) return;
  while (p.next <= log_.last_index() && can_send(p)) send_append(p);
}

template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::send_append(peer& p) {
  const index_t prev = p.next.prev();
  append_request r{term_, prev, *log_.term_at(prev), commit_, detail::entry_vectors::take(), reads_.round()};
  log_.copy(p.next, opts_.max_entries_per_message, opts_.max_bytes_per_message, r.entries);
  std::size_t bytes = 0;
  for (const auto& e : r.entries) bytes += entry_size(e);
  const index_t last = prev + r.entries.size();
  p.sent(last, bytes);
  p.heartbeat_due = false;               // it carries the round and the commit index
  send(p.id, std::move(r));
}

/// A heartbeat is an AppendEntries with no entries whose prev is the follower's known match:
/// it always passes the consistency check and carries the commit index (§3.5). A follower
/// whose match is behind our compacted prefix (pipelined sends still in flight) gets our
/// snapshot's index as prev, the oldest entry whose term we still know.
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::send_heartbeat(peer& p) {
  p.heartbeat_due = false;
  const index_t prev = std::max(p.match, log_.base_index());
  send(p.id, append_request{term_, prev, *log_.term_at(prev), commit_, {}, reads_.round()});
}

template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::on(node_id from, append_response r) {
  if (role_ != role::leader) return;
  peer* const found = find_peer(from);
  if (found == nullptr) return;
  peer& p = *found;
  p.active = true;
  acknowledge_round(p, r.round);
  if (r.success) {
    if (r.match_index > log_.last_index()) return;  // cannot be: ignore a corrupt reply
    if (p.acknowledged(r.match_index)) {
      maybe_commit();
      if (!still_leading(term_) || p.removed) return;
      maybe_send_timeout_now(p);
    }
    p.caught_up();
  } else {
    // A rejection only counts if it is about what we are sending now (§3.5 fast backtracking).
    if (!p.rejection_counts(r.rejected_index)) return;
    p.probe(next_index_after_rejection(log_, r, p.match));
  }
  // settle() sends what the follower lacks at the end of this batch of messages; only a
  // follower that needs the snapshot wakes its replicator.
  if (p.next <= log_.base_index()) p.wake.notify();
}

/// §3.6.2: commit the highest current-term entry a quorum stores; the leader counts itself
/// with what its own storage reported durable.
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::maybe_commit() {
  const index_t c = leader_commit_index(
      config_,
      [&](node_id v) {
        if (v == opts_.id) return persist_.durable();
        const peer* p = find_peer(v);
        return p == nullptr ? index_t{0} : p->match;
      },
      log_, term_, commit_);
  if (c > commit_) {
    advance_commit(c);
    leader_after_commit();
  }
}

template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::advance_commit(index_t c) {
  metrics_.entries_committed += c - commit_;
  commit_ = c;
  commit_signal_.notify();
  if constexpr (snapshots) {
    if (incoming_ && commit_ >= incoming_->meta.index) drop_overtaken_snapshot();
  }
  schedule_settle();  // applied at the end of the current event, or in a settle() of its own
}

/// What a leader does once its configuration entry commits (§4.3): C_old,new committed means
/// C_new comes next; C_new committed without this node as a voter means stepping down.
/// Deferred reads start once the leader's first entry of its term commits (§6.4).
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::leader_after_commit() {
  if (reads_.waiting_for_commit() && committed_in_term()) {
    reads_.committed_in_term(commit_);
    start_round();
  }
  if (config_index_ > commit_) return;
  if (config_.joint()) {
    append_local(entry_kind::configuration, encode(leave_joint(config_)));
  } else if (!config_.is_voter(opts_.id)) {
    log_line(log_level::info, "node ", opts_.id, " steps down in term ", term_,
             ": it is not a voter of the committed configuration");
    become_follower(term_, no_node);
  }
}

// ---------------------------------------------------------------------------------------------
// Follower side.

/// Common to AppendEntries and InstallSnapshot from the leader of our term: follow it and
/// restart the election timeout. False if this node leads the same term (impossible).
template <class StateMachine, class Storage, class Transport, class Timer>
inline bool node<StateMachine, Storage, Transport, Timer>::accept_leader_message(node_id from) {
  if (role_ == role::leader) {
    // Election safety makes this impossible; refuse to act on it.
    log_line(log_level::error, "node ", opts_.id, " is leader of term ", term_,
             " and got a leader's message from ", from, " for the same term; ignored");
    return false;
  }
  if (role_ != role::follower || leader_ != from) {
    become_follower(term_, from);
    leader_round_ = 0;
  }
  last_leader_contact_ = Clock::now();
  reset_election_deadline(last_leader_contact_);  // one reading of the clock per leader's message
  expire_forwarded_reads();
  return true;
}

/// Takes `r` by reference: its entries are moved into the log, and the receive loop
/// recycles the emptied vector.
template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::on(node_id from, append_request&& r) {
  if (!well_formed(r)) {
    log_line(log_level::warning, "node ", opts_.id, " drops malformed AppendEntries from ", from);
    return;
  }
  if (!accept_leader_message(from)) return;
  leader_round_ = std::max(leader_round_, r.round);
  if (installing_) return;  // the log is about to be replaced; the leader retries

  const append_decision d = decide_append(log_, r, commit_);
  if (!d.accept) {
    ++metrics_.append_rejections;
    send(from, append_response{term_, false, index_t{0}, r.prev_log_index, d.conflict_index,
                               d.conflict_term, leader_round_});
    return;
  }
  if (d.truncate_after) {
    if (*d.truncate_after < commit_)
      throw std::logic_error(
          detail::join({"raft: leader asked to overwrite committed entry ", d.truncate_after->next()}));
    truncate_log(*d.truncate_after);
  }
  for (std::size_t k = d.first_new; k < r.entries.size(); ++k) {
    const bool is_config = r.entries[k].kind == entry_kind::configuration;
    log_.append(std::move(r.entries[k]));
    if (is_config) reload_configuration();
  }
  verified_ = std::max(verified_, d.last_new);
  const index_t commit = std::min(d.commit, log_.last_index());
  if (commit > commit_) advance_commit(commit);
  if (persist_.durable() >= d.last_new)
    acknowledge();
  else
    ack_owed_ = true;  // flushed() acknowledges once the entries are durable
  if (r.quiesce) follow_quiesce(r);
}

/// Entries must continue from prev_log_index without gaps, with terms that never decrease and
/// never exceed the leader's term. A correct leader always sends such requests.
template <class StateMachine, class Storage, class Transport, class Timer>
inline bool node<StateMachine, Storage, Transport, Timer>::well_formed(const append_request& r) noexcept {
  term_t last = r.prev_log_term;
  for (std::size_t k = 0; k < r.entries.size(); ++k) {
    const auto& e = r.entries[k];
    if (e.index != r.prev_log_index + (k + 1) || e.term < last || e.term > r.term) return false;
    last = e.term;
  }
  return r.prev_log_term <= r.term;
}

template <class StateMachine, class Storage, class Transport, class Timer>
inline void node<StateMachine, Storage, Transport, Timer>::acknowledge() {
  ack_owed_ = persist_.durable() < verified_;  // acknowledge the rest once it is durable
  if (leader_ == no_node) return;
  send(leader_, append_response{term_, true, std::min(persist_.durable(), verified_), index_t{0},
                                index_t{0}, term_t{0}, leader_round_});
}

template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::truncate_log(index_t after) {
  log_.truncate_after(after);
  if (persist_.truncated(after)) storage_.truncate_after(after);
  if (config_index_ > after) reload_configuration();
}

/// The latest configuration entry in the log is the one in effect (§4.1).
template <class StateMachine, class Storage, class Transport, class Timer>
void node<StateMachine, Storage, Transport, Timer>::reload_configuration() {
  auto [c, i] = config_at(log_.last_index());
  config_index_ = i;
  if (c == config_) return;
  config_ = std::move(c);
  // A lease confirmed by a quorum of the old configuration proves nothing about the new one
  // (removed voters no longer count): only rounds started from now on renew it.
  reads_.configuration_changed();
  emit(event_kind::membership_changed, i);
  sync_peers();
  commit_signal_.notify();
}

/// The configuration in effect at `index` and the index of its entry: the latest
/// configuration entry at or before `index`, else the snapshot's.
template <class StateMachine, class Storage, class Transport, class Timer>
auto node<StateMachine, Storage, Transport, Timer>::config_at(index_t index) const -> std::pair<configuration, index_t> {
  if (const auto i = log_.last_configuration_through(std::min(index, log_.last_index()))) {
    const log_entry& e = log_.at(*i);
    auto c = decode_configuration(e.data.bytes());
    if (!c) throw std::runtime_error(detail::join({"raft: undecodable configuration entry at index ", *i}));
    return {std::move(*c), *i};
  }
  return {snapshot_config_, snapshot_index_};
}

}  // namespace v1
}  // namespace raft
