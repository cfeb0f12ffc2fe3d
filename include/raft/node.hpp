// raft/node.hpp - raft::node, one member of a Raft cluster.
//
// The protocol is written as a handful of coroutines on the node's executor (see docs/architecture.md):
//
//   receive_loop        takes messages from the transport and steps the protocol with each one
//   election_timer      starts an election when no leader is heard from (§3.4); on a leader, it
//                       runs CheckQuorum (§6.2)
//   campaign            one PreVote (§9.6) or vote round (§3.4), replies gathered concurrently
//   replicate_to(peer)  one per follower while leading: pipelined, batched AppendEntries (§3.5)
//   heartbeat_loop      while leading: makes every replicator send at least a heartbeat
//   persist_loop        hands new log entries to storage and flushes them, many per flush
//   apply_loop          applies committed entries in order and completes proposals
//
// Message handlers are plain functions that never suspend, so the protocol state cannot change
// in the middle of handling one message. Every decision is one of the pure rules in
// raft/core/rules.hpp; this file gathers their inputs and carries their outcomes out.
// All state is touched only on the node's executor: no locks.
#pragma once

#include <cassert>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/steady_timer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/dispatch.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include "raft/detail/asio_check.hpp"

#include "raft/concepts.hpp"
#include "raft/core/configuration.hpp"
#include "raft/core/errors.hpp"
#include "raft/core/log.hpp"
#include "raft/core/messages.hpp"
#include "raft/core/quorum.hpp"
#include "raft/core/rules.hpp"
#include "raft/core/status.hpp"
#include "raft/detail/signal.hpp"
#include "raft/detail/unique_function.hpp"
#include "raft/options.hpp"

namespace raft {
inline namespace v1 {

/// One member of a Raft cluster. `Timer` is the timer the node's loops sleep on; its clock is
/// the node's clock. The default is real time; raft::testing::virtual_timer runs a node on the
/// deterministic simulated clock.
template <state_machine StateMachine, storage Storage, transport Transport,
          timer Timer = asio::steady_timer>
class node {
 public:
  using result_type = apply_result_t<StateMachine>;
  using timer_type = Timer;
  using clock_type = typename Timer::clock_type;
  using executor_type = asio::any_io_executor;

  /// The node keeps references to `sm`, `store` and `net`: they must outlive it. It runs on `ex`
  /// (use a strand if the io_context has several threads). Nothing happens before start().
  node(executor_type ex, options opts, StateMachine& sm, Storage& store, Transport& net)
      : ex_(std::move(ex)),
        opts_(std::move(opts)),
        sm_(sm),
        storage_(store),
        transport_(net),
        rng_(opts_.seed != 0 ? opts_.seed : 0x9E3779B97F4A7C15ull * (opts_.id.value + 1)),
        election_timer_(ex_),
        heartbeat_timer_(ex_),
        persist_signal_(ex_),
        commit_signal_(ex_),
        round_signal_(ex_),
        joined_signal_(ex_) {}

  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// A started node must be stopped (`co_await stop()`) before it is destroyed: its coroutines
  /// refer to it. Destroying a running node is a programming error and aborts with a message.
  ~node() {
    if (running_ != 0) {
      std::fputs("raft::node destroyed while running: co_await node.stop() first\n", stderr);
      std::abort();
    }
  }

  /// Reads the storage, bootstraps a new cluster if `options.bootstrap` is set and the storage
  /// is empty, and starts the node's coroutines. Call on the node's executor (or before the
  /// executor runs). Throws std::invalid_argument for bad options and std::runtime_error for a
  /// storage whose contents break the log's invariants.
  void start() {
    if (const char* why = validate(opts_)) throw std::invalid_argument(why);
    if (started_) throw std::logic_error("raft::node::start called twice");
    recover(storage_.load());
    started_ = true;
    reset_election_deadline();
    spawn(receive_loop());
    spawn(election_timer());
    spawn(persist_loop());
    spawn(apply_loop());
  }

  /// Stops the node: every pending proposal completes with errc::stopped, the transport is
  /// closed, and this completes once every coroutine of the node has finished, after which the
  /// node may be destroyed. Safe to call more than once, from any executor.
  asio::awaitable<void> stop() { co_await asio::co_spawn(ex_, shutdown(), asio::use_awaitable); }

  /// Proposes `command` for the replicated log. Completes with the state machine's result for the
  /// command once it is applied on this node, or with an error: errc::not_leader (with the
  /// known leader in `leader_hint`), errc::leadership_lost (outcome unknown: the entry may
  /// still commit under the next leader), errc::busy, errc::stopped.
  /// The command's bytes are copied before this returns. Any Asio completion token works;
  /// the default makes it awaitable: `auto r = co_await node.propose(bytes);`.
  template <class CompletionToken = asio::use_awaitable_t<>>
  auto propose(std::span<const std::byte> command, CompletionToken&& token = {}) {
    return asio::async_initiate<CompletionToken, void(result<result_type>)>(
        [this](auto handler, buffer cmd) {
          asio::dispatch(ex_, [this, cmd = std::move(cmd), h = std::move(handler)]() mutable {
            start_proposal(std::move(cmd), make_completion(std::move(h)));
          });
        },
        token, buffer{command});
  }

  /// A snapshot of the node's state. Call on the node's executor.
  [[nodiscard]] node_status status() const {
    return node_status{opts_.id, role_,   term_,     leader_,  commit_,
                       applied_, log_.last_index(), durable_, config_};
  }

  [[nodiscard]] node_id id() const noexcept { return opts_.id; }
  [[nodiscard]] raft::role role() const noexcept { return role_; }
  [[nodiscard]] term_t term() const noexcept { return term_; }
  [[nodiscard]] node_id leader() const noexcept { return leader_; }
  [[nodiscard]] index_t commit_index() const noexcept { return commit_; }
  [[nodiscard]] index_t applied_index() const noexcept { return applied_; }
  /// The node's log as held in memory (for observers and tests; on the node's executor).
  [[nodiscard]] const log_view& log() const noexcept { return log_; }
  /// The error that stopped the node (a storage failure, say), or null.
  [[nodiscard]] std::exception_ptr failure() const noexcept { return failure_; }
  [[nodiscard]] bool stopping() const noexcept { return stopping_; }
  [[nodiscard]] const executor_type& get_executor() const noexcept { return ex_; }

 private:
  using Clock = clock_type;
  using time_point = typename Clock::time_point;
  using completion = detail::unique_function<void(result<result_type>)>;

  // ---------------------------------------------------------------------------------------------
  // State.

  /// The leader's view of one follower (Figure 3.1 nextIndex/matchIndex, plus flow control).
  /// Exists only while this node leads; its replicator coroutine shares ownership.
  /// Invariant: match < next.
  struct peer {
    peer(node_id peer_id, const executor_type& ex, index_t next_index)
        : id(peer_id), next(next_index), wake(ex) {}
    node_id id;
    index_t match{0};      ///< highest entry known to be durably stored on the follower
    index_t next;          ///< next entry to send
    bool probing = true;   ///< position unknown: one AppendEntries at a time, no pipelining
    std::deque<std::pair<index_t, std::size_t>> inflight;  ///< last index, bytes per unacked send
    std::size_t inflight_bytes = 0;
    bool heartbeat_due = false;
    int ticks_without_ack = 0;  ///< heartbeat ticks with sends outstanding and nothing acked
    bool active = false;        ///< heard from since the last CheckQuorum round
    detail::signal wake;        ///< wakes replicate_to(): new entries, an ack, a heartbeat tick
  };

  /// One PreVote or vote round. Each voter's answer is counted once.
  struct election_round {
    std::uint64_t id;
    bool pre_vote;
    term_t term;
    std::map<node_id, bool> votes;
  };

  struct pending_proposal {
    index_t index;
    term_t term;
    completion done;
  };

  executor_type ex_;
  options opts_;
  StateMachine& sm_;
  Storage& storage_;
  Transport& transport_;
  std::mt19937_64 rng_;

  // Persistent state (Figure 3.1), mirrored in storage.
  term_t term_{0};
  node_id voted_for_ = no_node;
  log_view log_;

  // Volatile state.
  raft::role role_ = role::follower;
  node_id leader_ = no_node;
  index_t commit_{0};
  index_t applied_{0};
  configuration config_;   ///< latest configuration in the log (§4.1)
  index_t config_index_{0};

  // Durability: entries up to submitted_ were handed to storage; up to durable_ are durable.
  index_t submitted_{0};
  index_t durable_{0};
  index_t flush_floor_{0};  ///< lowest truncation point seen while a flush was in progress
  bool flush_needed_ = false;

  // Follower side.
  index_t verified_{0};     ///< highest index known to match the current leader's log (this term)
  bool ack_owed_ = false;   ///< entries were accepted; acknowledge once they are durable
  time_point election_deadline_{};
  time_point armed_deadline_{};   ///< the deadline election_timer_ currently sleeps until
  time_point last_leader_contact_{};

  // Candidate side.
  std::optional<election_round> round_;
  std::uint64_t round_seq_ = 0;

  // Leader side.
  std::map<node_id, std::shared_ptr<peer>> peers_;
  std::deque<pending_proposal> pending_;

  // Coroutine plumbing.
  Timer election_timer_;
  Timer heartbeat_timer_;
  detail::signal persist_signal_;
  detail::signal commit_signal_;
  detail::signal round_signal_;
  detail::signal joined_signal_;
  int running_ = 0;
  bool started_ = false;
  bool stopping_ = false;
  std::exception_ptr failure_;
  std::vector<log_entry> append_batch_;

  // ---------------------------------------------------------------------------------------------
  // Lifecycle.

  void recover(persistent_state ps) {
    term_ = ps.state.term;
    voted_for_ = ps.state.voted_for;
    log_ = log_view(ps.base_index, ps.base_term);
    for (auto& e : ps.entries) {
      if (e.index != log_.last_index().next())
        throw std::runtime_error("raft: storage returned a log with a gap before index " +
                                 std::to_string(e.index.value));
      if (e.term < log_.last_term() || e.term > term_)
        throw std::runtime_error("raft: storage returned an entry with an impossible term at index " +
                                 std::to_string(e.index.value));
      log_.append(std::move(e));
    }
    submitted_ = durable_ = log_.last_index();
    commit_ = applied_ = ps.base_index;
    if (log_.last_index() == index_t{0} && opts_.bootstrap) {
      // A brand-new cluster: every founding member writes the same first entry.
      if (term_ < term_t{1}) {
        term_ = term_t{1};
        persist_hard_state();
      }
      log_.append(log_entry{term_t{1}, index_t{1}, entry_kind::configuration, encode(*opts_.bootstrap)});
      flush_needed_ = true;
    }
    reload_configuration();
  }

  void spawn(asio::awaitable<void> task) {
    ++running_;
    asio::co_spawn(ex_, std::move(task), [this](std::exception_ptr e) {
      --running_;
      if (e) fail(e);
      joined_signal_.notify();
    });
  }

  /// Fail-stop: an error the node cannot recover from (storage failure, a broken invariant).
  void fail(std::exception_ptr e) {
    if (!failure_) failure_ = e;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      opts_.logger.log(log_level::error, "node ", opts_.id, " stopping after error: ", ex.what());
    } catch (...) {
      opts_.logger.log(log_level::error, "node ", opts_.id, " stopping after unknown error");
    }
    begin_stop();
  }

  void begin_stop() {
    if (stopping_) return;
    stopping_ = true;
    round_.reset();
    auto pending = std::move(pending_);
    pending_.clear();
    for (auto& p : pending) p.done(error{errc::stopped, leader_});
    transport_.close();
    election_timer_.cancel();
    heartbeat_timer_.cancel();
    persist_signal_.notify();
    commit_signal_.notify();
    round_signal_.notify();
    for (auto& [id, p] : peers_) p->wake.notify();
    peers_.clear();
  }

  asio::awaitable<void> shutdown() {
    begin_stop();
    while (running_ > 0) co_await joined_signal_.wait();
  }

  // ---------------------------------------------------------------------------------------------
  // Receiving: every message goes through step().

  asio::awaitable<void> receive_loop() {
    std::vector<message> batch;
    while (!stopping_) {
      batch.clear();
      if (!co_await transport_.receive(batch)) break;
      for (auto& m : batch) {
        if (stopping_) break;
        step(std::move(m));
      }
    }
  }

  void step(message&& m) {
    if (m.to != opts_.id || m.from == opts_.id || m.from == no_node) return;
    const term_t t = term_of(m.body);
    if (t > term_) {
      // Figure 3.1 "Rules for all servers": a higher term makes us a follower in it, except for
      // a pre-vote request (asks about a future term, changes nothing, §9.6), a granted pre-vote
      // reply (echoes the term we asked about), and a vote request while we hear from a live
      // leader (§4.2.3: ignored, so a disruptive server cannot depose it).
      if (const auto* r = std::get_if<vote_request>(&m.body)) {
        if (!r->pre_vote) {
          if (opts_.check_quorum && leader_is_alive()) {
            opts_.logger.log(log_level::debug, "node ", opts_.id, " ignores vote request from ",
                             m.from, " for term ", t, ": leader ", leader_, " is alive");
            return;
          }
          become_follower(t, no_node);
        }
      } else if (const auto* v = std::get_if<vote_response>(&m.body); v && v->pre_vote && v->granted) {
        // a granted pre-vote echoes the future term we asked about: counted below
      } else {
        become_follower(t, std::holds_alternative<append_request>(m.body) ? m.from : no_node);
      }
    } else if (t < term_) {
      // A stale sender learns our term from the reply and steps down; stale replies are dropped.
      if (const auto* r = std::get_if<append_request>(&m.body)) {
        send(m.from, append_response{term_, false, index_t{0}, r->prev_log_index, index_t{0}, term_t{0}});
      } else if (const auto* v = std::get_if<vote_request>(&m.body)) {
        send(m.from, vote_response{term_, false, v->pre_vote});
      }
      return;
    }
    std::visit([&](auto& body) { on(m.from, std::move(body)); }, m.body);
  }

  // ---------------------------------------------------------------------------------------------
  // Elections (§3.4, §9.6 PreVote, §6.2 CheckQuorum).

  [[nodiscard]] bool leader_is_alive() const {
    if (role_ == role::leader) return true;
    return leader_ != no_node && Clock::now() - last_leader_contact_ < opts_.election_timeout_min;
  }

  void reset_election_deadline() {
    const auto spread = (opts_.election_timeout_max - opts_.election_timeout_min).count();
    std::uniform_int_distribution<std::int64_t> jitter(0, spread - 1);
    set_election_deadline(opts_.election_timeout_min + std::chrono::nanoseconds(jitter(rng_)));
  }

  /// Moves the election deadline to `after` from now. The timer is re-armed lazily when it
  /// fires; only a deadline earlier than the armed one needs to wake it now.
  void set_election_deadline(std::chrono::nanoseconds after) {
    election_deadline_ = Clock::now() + std::chrono::duration_cast<typename Clock::duration>(after);
    if (election_deadline_ < armed_deadline_) election_timer_.cancel();
  }

  /// Re-arms to the latest deadline instead of being cancelled on every heartbeat.
  asio::awaitable<void> election_timer() {
    std::error_code ec;
    while (!stopping_) {
      armed_deadline_ = election_deadline_;
      election_timer_.expires_at(armed_deadline_);
      co_await election_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (stopping_) break;
      if (Clock::now() < election_deadline_) continue;  // the deadline moved while we slept
      on_election_timeout();
    }
  }

  void on_election_timeout() {
    if (role_ == role::leader) {
      // §6.2 CheckQuorum: step down unless a quorum was heard from during the last timeout.
      set_election_deadline(opts_.election_timeout_min);
      if (!opts_.check_quorum) return;
      const auto heard = quorum_vote(config_, [&](node_id v) -> std::optional<bool> {
        if (v == opts_.id) return true;
        auto it = peers_.find(v);
        return it != peers_.end() && it->second->active;
      });
      for (auto& [id, p] : peers_) p->active = false;
      if (heard != vote_result::won) {
        opts_.logger.log(log_level::info, "node ", opts_.id, " steps down in term ", term_,
                         ": no quorum heard within an election timeout");
        become_follower(term_, no_node);
      }
      return;
    }
    reset_election_deadline();
    if (!config_.is_voter(opts_.id)) return;  // learners and removed nodes never campaign
    spawn(campaign(opts_.pre_vote));
  }

  /// One election round. A pre-vote round asks whether we could win the next term without
  /// changing anyone's term; if it wins, the real round follows. Replies are counted as they
  /// arrive (on_vote_response) and the round ends as soon as the outcome is decided, or when a
  /// newer round, a leader or a higher term supersedes it.
  asio::awaitable<void> campaign(bool pre_vote) {
    const term_t round_term = term_.next();
    leader_ = no_node;  // we stopped hearing from it: stop naming it in hints
    if (pre_vote) {
      role_ = role::pre_candidate;
    } else {
      // §3.4: increment the term, vote for self, persist both before asking anyone.
      role_ = role::candidate;
      term_ = round_term;
      voted_for_ = opts_.id;
      verified_ = index_t{0};
      persist_hard_state();
    }
    const std::uint64_t id = ++round_seq_;
    round_ = election_round{id, pre_vote, round_term, {{opts_.id, true}}};
    round_signal_.notify();  // a round this one replaces ends now
    opts_.logger.log(log_level::info, "node ", opts_.id, " starts ", pre_vote ? "pre-vote" : "election",
                     " for term ", round_term);
    for (node_id v : config_.all_members())
      if (v != opts_.id && config_.is_voter(v))
        send(v, vote_request{round_term, log_.last_index(), log_.last_term(), pre_vote});

    vote_result outcome = vote_result::pending;
    for (;;) {
      if (stopping_ || !round_ || round_->id != id) co_return;  // superseded
      outcome = quorum_vote(config_, [&](node_id v) -> std::optional<bool> {
        auto it = round_->votes.find(v);
        if (it == round_->votes.end()) return std::nullopt;
        return it->second;
      });
      if (outcome != vote_result::pending) break;
      co_await round_signal_.wait();
    }
    round_.reset();
    if (outcome == vote_result::lost) {
      if (pre_vote) role_ = role::follower;  // wait for the next timeout; nothing changed
      co_return;
    }
    if (pre_vote)
      co_await campaign(false);
    else
      become_leader();
  }

  void on(node_id from, vote_request r) {
    const voter_state me{term_, voted_for_, log_.last_term(), log_.last_index(), leader_is_alive()};
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

  void on(node_id from, vote_response r) {
    if (!round_ || r.pre_vote != round_->pre_vote) return;
    // A grant names the round's term. A pre-vote refusal carries the voter's term, which is not
    // above ours (a higher one made us a follower in step()), so it counts against the round.
    const bool for_this_round = r.granted || !r.pre_vote ? r.term == round_->term : true;
    if (!for_this_round) return;
    if (!config_.is_voter(from)) return;
    round_->votes.emplace(from, r.granted);  // one answer per voter per round
    round_signal_.notify();
  }

  void become_follower(term_t term, node_id leader) {
    if (term > term_) {
      term_ = term;
      voted_for_ = no_node;
      verified_ = index_t{0};
      persist_hard_state();
    }
    const bool was_leader = role_ == role::leader;
    if (role_ != role::follower || leader_ != leader)
      opts_.logger.log(log_level::info, "node ", opts_.id, " is follower in term ", term_,
                       leader != no_node ? " of leader " : "", leader != no_node ? std::to_string(leader.value) : "");
    role_ = role::follower;
    leader_ = leader;
    if (round_) {
      round_.reset();
      round_signal_.notify();
    }
    if (was_leader) {
      stop_leading();
      reset_election_deadline();
    }
  }

  void become_leader() {
    role_ = role::leader;
    leader_ = opts_.id;
    opts_.logger.log(log_level::info, "node ", opts_.id, " is leader in term ", term_);
    for (node_id m : config_.all_members()) {
      if (m == opts_.id) continue;
      auto p = std::make_shared<peer>(m, ex_, log_.last_index().next());
      p->active = true;  // give every follower one full timeout before CheckQuorum counts it out
      peers_.emplace(m, p);
      spawn(replicate_to(std::move(p), term_));
    }
    // §6.4: a no-op entry of the new term lets earlier entries commit (Figure 3.7) and tells the
    // leader which entries are committed.
    append_local(entry_kind::noop, buffer{});
    set_election_deadline(opts_.election_timeout_min);  // the first CheckQuorum round
    spawn(heartbeat_loop(term_));
  }

  void stop_leading() {
    for (auto& [id, p] : peers_) p->wake.notify();
    peers_.clear();
    heartbeat_timer_.cancel();
    // Proposals not yet committed may or may not commit under the next leader.
    std::vector<pending_proposal> lost;
    while (!pending_.empty() && pending_.back().index > commit_) {
      lost.push_back(std::move(pending_.back()));
      pending_.pop_back();
    }
    for (auto& p : lost) p.done(error{errc::leadership_lost, leader_});
  }

  [[nodiscard]] bool still_leading(term_t term) const noexcept {
    return !stopping_ && role_ == role::leader && term_ == term;
  }

  // ---------------------------------------------------------------------------------------------
  // Replication, leader side (§3.5).

  void start_proposal(buffer command, completion done) {
    if (stopping_) return refuse(std::move(done), errc::stopped);
    if (role_ != role::leader) return refuse(std::move(done), errc::not_leader);
    if (pending_.size() >= opts_.max_pending_proposals) return refuse(std::move(done), errc::busy);
    const index_t index = append_local(entry_kind::command, std::move(command));
    pending_.push_back(pending_proposal{index, term_, std::move(done)});
  }

  /// Completes a proposal refused on arrival. Posted, so the handler never runs inside the
  /// propose() call that started it (a proposer retrying in a loop would otherwise recurse).
  void refuse(completion done, errc why) {
    asio::post(ex_, [done = std::move(done), e = error{why, leader_}]() mutable { done(e); });
  }

  /// Appends an entry of the current term to the leader's log. Storage and followers receive it
  /// in parallel (§10.2.1); the leader counts itself for it only once it is durable.
  index_t append_local(entry_kind kind, buffer data) {
    const index_t index = log_.last_index().next();
    log_.append(log_entry{term_, index, kind, std::move(data)});
    if (kind == entry_kind::configuration) reload_configuration();
    persist_signal_.notify();
    for (auto& [id, p] : peers_) p->wake.notify();
    return index;
  }

  asio::awaitable<void> heartbeat_loop(term_t term) {
    std::error_code ec;
    while (still_leading(term)) {
      for (auto& [id, p] : peers_) {
        p->heartbeat_due = true;
        // Sends outstanding and no progress for a whole interval: a message or its reply was
        // lost. Resend the probe, or everything after the last known match.
        if (!p->inflight.empty() && ++p->ticks_without_ack >= 2)
          restart_probe(*p, p->probing ? p->next : p->match.next());
        p->wake.notify();
      }
      heartbeat_timer_.expires_after(std::chrono::duration_cast<typename Clock::duration>(
          opts_.heartbeat_interval));
      co_await heartbeat_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  /// Keeps one follower's log in line with ours: sends what it lacks, up to the flow-control
  /// window, then sleeps until there is news (new entries, an ack, a heartbeat tick).
  asio::awaitable<void> replicate_to(std::shared_ptr<peer> p, term_t term) {
    while (still_leading(term)) {
      bool sent = false;
      while (p->next <= log_.last_index() && can_send(*p)) {
        send_append(*p);
        sent = true;
      }
      if (p->heartbeat_due) {
        if (!sent) send_heartbeat(*p);
        p->heartbeat_due = false;
      }
      co_await p->wake.wait();
    }
  }

  [[nodiscard]] bool can_send(const peer& p) const noexcept {
    if (p.probing) return p.inflight.empty();
    return p.inflight.size() < opts_.max_inflight_messages &&
           p.inflight_bytes < opts_.max_inflight_bytes;
  }

  void send_append(peer& p) {
    const index_t prev = p.next.prev();
    append_request r{term_, prev, *log_.term_at(prev), commit_, {}};
    log_.copy(p.next, opts_.max_entries_per_message, opts_.max_bytes_per_message, r.entries);
    std::size_t bytes = 0;
    for (const auto& e : r.entries) bytes += entry_size(e);
    const index_t last = prev + r.entries.size();
    p.inflight.emplace_back(last, bytes);
    p.inflight_bytes += bytes;
    if (!p.probing) p.next = last.next();  // pipelining: assume success, correct on rejection
    send(p.id, std::move(r));
  }

  /// A heartbeat is an AppendEntries with no entries whose prev is the follower's known match:
  /// it always passes the consistency check and carries the commit index (§3.5).
  void send_heartbeat(peer& p) {
    send(p.id, append_request{term_, p.match, *log_.term_at(p.match), commit_, {}});
  }

  void restart_probe(peer& p, index_t next) {
    p.probing = true;
    p.next = next;
    p.inflight.clear();
    p.inflight_bytes = 0;
    p.ticks_without_ack = 0;
  }

  void on(node_id from, append_response r) {
    if (role_ != role::leader) return;
    auto it = peers_.find(from);
    if (it == peers_.end()) return;
    peer& p = *it->second;
    p.active = true;
    if (r.success) {
      if (r.match_index > log_.last_index()) return;  // cannot be: ignore a corrupt reply
      if (r.match_index > p.match) {
        p.match = r.match_index;
        p.ticks_without_ack = 0;
        while (!p.inflight.empty() && p.inflight.front().first <= p.match) {
          p.inflight_bytes -= p.inflight.front().second;
          p.inflight.pop_front();
        }
        maybe_commit();
      }
      if (p.probing && p.match.next() >= p.next) {
        p.probing = false;  // the probe landed: pipeline from here
        p.inflight.clear();
        p.inflight_bytes = 0;
      }
      if (p.next <= p.match) p.next = p.match.next();
    } else {
      // A rejection only counts if it is about what we are sending now (§3.5 fast backtracking).
      if (r.rejected_index <= p.match) return;
      if (p.probing && r.rejected_index != p.next.prev()) return;
      restart_probe(p, next_index_after_rejection(log_, r, p.match));
    }
    p.wake.notify();
  }

  /// §3.6.2: commit the highest current-term entry a quorum stores; the leader counts itself
  /// with what its own storage reported durable.
  void maybe_commit() {
    const index_t c = leader_commit_index(
        config_,
        [&](node_id v) {
          if (v == opts_.id) return durable_;
          auto it = peers_.find(v);
          return it == peers_.end() ? index_t{0} : it->second->match;
        },
        log_, term_, commit_);
    if (c > commit_) {
      commit_ = c;
      commit_signal_.notify();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Replication, follower side (Figure 3.1 AppendEntries receiver).

  void on(node_id from, append_request r) {
    if (role_ == role::leader) {
      // Election safety makes this impossible; refuse to act on it.
      opts_.logger.log(log_level::error, "node ", opts_.id, " is leader of term ", term_,
                       " and got AppendEntries from ", from, " for the same term; ignored");
      return;
    }
    if (!well_formed(r)) {
      opts_.logger.log(log_level::warning, "node ", opts_.id, " drops malformed AppendEntries from ", from);
      return;
    }
    if (role_ != role::follower || leader_ != from) become_follower(term_, from);
    last_leader_contact_ = Clock::now();
    reset_election_deadline();

    const append_decision d = decide_append(log_, r, commit_);
    if (!d.accept) {
      send(from, append_response{term_, false, index_t{0}, r.prev_log_index, d.conflict_index,
                                 d.conflict_term});
      return;
    }
    if (d.truncate_after) {
      if (*d.truncate_after < commit_)
        throw std::logic_error("raft: leader asked to overwrite committed entry " +
                               std::to_string(d.truncate_after->next().value));
      truncate_log(*d.truncate_after);
    }
    const bool appended = d.first_new < r.entries.size();
    for (std::size_t k = d.first_new; k < r.entries.size(); ++k) {
      const bool is_config = r.entries[k].kind == entry_kind::configuration;
      log_.append(std::move(r.entries[k]));
      if (is_config) reload_configuration();
    }
    if (appended) persist_signal_.notify();
    verified_ = std::max(verified_, d.last_new);
    const index_t commit = std::min(d.commit, log_.last_index());
    if (commit > commit_) {
      commit_ = commit;
      commit_signal_.notify();
    }
    if (durable_ >= d.last_new)
      acknowledge();
    else
      ack_owed_ = true;  // persist_loop acknowledges once the entries are durable
  }

  /// Entries must continue from prev_log_index without gaps, with terms that never decrease and
  /// never exceed the leader's term. A correct leader always sends such requests.
  [[nodiscard]] static bool well_formed(const append_request& r) noexcept {
    term_t last = r.prev_log_term;
    for (std::size_t k = 0; k < r.entries.size(); ++k) {
      const auto& e = r.entries[k];
      if (e.index != r.prev_log_index + (k + 1) || e.term < last || e.term > r.term) return false;
      last = e.term;
    }
    return r.prev_log_term <= r.term;
  }

  void acknowledge() {
    ack_owed_ = durable_ < verified_;  // acknowledge the rest once it is durable
    if (leader_ == no_node) return;
    send(leader_, append_response{term_, true, std::min(durable_, verified_), index_t{0},
                                  index_t{0}, term_t{0}});
  }

  void truncate_log(index_t after) {
    log_.truncate_after(after);
    if (after < submitted_) {
      // Only what storage already holds needs truncating there; entries not yet handed over
      // are simply never handed over. So the next append always starts right after `after`.
      storage_.truncate_after(after);
      submitted_ = after;
    }
    durable_ = std::min(durable_, after);
    flush_floor_ = std::min(flush_floor_, after);
    flush_needed_ = true;
    if (config_index_ > after) reload_configuration();
  }

  /// The latest configuration entry in the log is the one in effect (§4.1).
  void reload_configuration() {
    for (index_t i = log_.last_index(); i >= log_.first_index() && i > index_t{0}; i = i.prev()) {
      const log_entry& e = log_.at(i);
      if (e.kind != entry_kind::configuration) continue;
      auto c = decode_configuration(e.data.bytes());
      if (!c) throw std::runtime_error("raft: undecodable configuration entry at index " +
                                       std::to_string(i.value));
      config_ = std::move(*c);
      config_index_ = i;
      return;
    }
    config_ = configuration{};
    config_index_ = index_t{0};
  }

  // ---------------------------------------------------------------------------------------------
  // Persistence and apply.

  /// Group commit: everything appended since the last round goes to storage in one call and
  /// becomes durable with one flush. While a flush runs, new entries queue up for the next one.
  asio::awaitable<void> persist_loop() {
    while (!stopping_) {
      if (submitted_ == log_.last_index() && !flush_needed_) {
        co_await persist_signal_.wait();
        continue;
      }
      append_batch_.clear();
      for (index_t i = submitted_.next(); i <= log_.last_index(); i = i.next())
        append_batch_.push_back(log_.at(i));
      if (!append_batch_.empty()) storage_.append(append_batch_);
      submitted_ = log_.last_index();
      flush_needed_ = false;
      const index_t target = submitted_;
      flush_floor_ = target;
      co_await storage_.flush();
      durable_ = std::min(target, flush_floor_);  // a truncation during the flush lowers it
      if (stopping_) break;
      if (role_ == role::leader)
        maybe_commit();
      else if (ack_owed_)
        acknowledge();
    }
  }

  void persist_hard_state() { storage_.save_hard_state(hard_state{term_, voted_for_}); }

  /// Applies committed entries in log order, exactly once, and completes their proposals.
  asio::awaitable<void> apply_loop() {
    while (!stopping_) {
      if (applied_ >= commit_) {
        co_await commit_signal_.wait();
        continue;
      }
      const index_t until = std::min(commit_, applied_ + opts_.max_apply_batch);
      while (applied_ < until && !stopping_) apply(applied_.next());
      if (applied_ < commit_) co_await asio::post(ex_, asio::use_awaitable);  // let others run
    }
  }

  void apply(index_t i) {
    const log_entry& e = log_.at(i);
    applied_ = i;
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

  // ---------------------------------------------------------------------------------------------
  // Helpers.

  template <class Body>
  void send(node_id to, Body&& body) {
    transport_.send(message{opts_.id, to, std::forward<Body>(body)});
  }

  /// Wraps a completion handler so it runs on its own executor: inline when that is where the
  /// node is running (a coroutine on the node's executor resumes right away, no queueing),
  /// otherwise posted there. Completions are made only from the node's loops after it removed
  /// the proposal from its queues, so a handler that proposes again is safe.
  template <class Handler>
  completion make_completion(Handler h) {
    auto ex = asio::get_associated_executor(h, ex_);
    return [h = std::move(h), ex](result<result_type> r) mutable {
      asio::dispatch(ex, [h = std::move(h), r = std::move(r)]() mutable { h(std::move(r)); });
    };
  }
};

}  // namespace v1
}  // namespace raft
