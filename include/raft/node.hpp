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
//   persist_loop        hands new log entries to storage and flushes them, many per flush (only
//                       for a storage with an asynchronous flush; see settle())
//   take_snapshot       writes a state-machine snapshot to storage in chunks, then compacts
//   install_snapshot    makes a leader's snapshot durable and restores the state machine from it
//   membership_change   one joint-consensus change (C_old,new then C_new), awaited by its caller
//
// Message handlers are plain functions that never suspend, so the protocol state cannot change
// in the middle of handling one message. What an event causes (a batch of messages, a flush, a
// proposal) goes out at its end, in the same handler: settle() applies what committed, completes
// proposals, hands new entries to storage and sends followers what they lack, all batched. Work
// that arrives outside any event (a proposal from a client's coroutine, an apply backlog beyond
// options::max_apply_batch, a compaction after a snapshot) gets a settle() of its own, posted to
// the executor (schedule_settle()). Every decision is one of the pure rules in
// raft/core/rules.hpp; this file gathers their inputs and carries their outcomes out.
// All state is touched only on the node's executor: no locks.
#pragma once

#include <cassert>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/steady_timer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/dispatch.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/use_awaitable.hpp>

#include "raft/detail/asio_check.hpp"

#include "raft/concepts.hpp"
#include "raft/core/confchange.hpp"
#include "raft/core/configuration.hpp"
#include "raft/core/election_round.hpp"
#include "raft/core/errors.hpp"
#include "raft/core/log.hpp"
#include "raft/core/messages.hpp"
#include "raft/core/progress.hpp"
#include "raft/core/quorum.hpp"
#include "raft/core/read_index.hpp"
#include "raft/core/rules.hpp"
#include "raft/core/status.hpp"
#include "raft/detail/jitter_rng.hpp"
#include "raft/detail/log_line.hpp"
#include "raft/detail/persistence.hpp"
#include "raft/detail/signal.hpp"
#include "raft/detail/suspend.hpp"
#include "raft/detail/take_front.hpp"
#include "raft/core/snapshot.hpp"
#include "raft/detail/unique_function.hpp"
#include "raft/events.hpp"
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
        round_signal_(ex_) {}

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
  [[gnu::cold, gnu::noinline]]
  void start() {
    if (const char* why = validate(opts_)) throw std::invalid_argument(why);
    if (started_) throw std::logic_error("raft::node::start called twice");
    recover(storage_.load());
    started_ = true;
    first_read_id();
    reset_election_deadline();
    spawn(receive_loop());
    spawn(election_timer());
    if constexpr (!inline_flush) spawn(persist_loop());
    if (persist_pending()) persist_later();  // a bootstrap entry, a log reset a crash interrupted
  }

  /// Stops the node: every pending proposal completes with errc::stopped, the transport is
  /// closed, and this completes once every coroutine of the node has finished, after which the
  /// node may be destroyed. Safe to call more than once, from any executor.
  [[nodiscard]] asio::awaitable<void> stop() {
    // An asynchronous operation, not a coroutine of its own: the caller's handler waits in
    // stop_waiters_ until the last coroutine of the node has finished.
    return detail::suspend(
        [](void* self, detail::resume_fn resume, const executor_type& caller) {
          static_cast<node*>(self)->request_stop(std::move(resume), caller);
        },
        this);
  }

  /// Proposes `command` for the replicated log. Completes with the state machine's result for the
  /// command once it is applied on this node, or with an error: errc::not_leader (with the
  /// known leader in `leader_hint`), errc::leadership_lost (outcome unknown: the entry may
  /// still commit under the next leader), errc::committed_result_unknown (it committed, but this
  /// node installed a snapshot covering it instead of applying it), errc::transferring,
  /// errc::busy, errc::stopped.
  /// The command's bytes are copied before this returns. Any Asio completion token works;
  /// the default makes it awaitable: `auto r = co_await node.propose(bytes);`.
  template <class CompletionToken = asio::use_awaitable_t<>>
  auto propose(std::span<const std::byte> command, CompletionToken&& token = {}) {
    return asio::async_initiate<CompletionToken, void(result<result_type>)>(
        [this](auto handler, buffer cmd) {
          asio::dispatch(ex_, [this, cmd = std::move(cmd), h = std::move(handler)]() mutable {
            start_proposal(std::move(cmd), make_completion<result_type>(std::move(h)));
          });
        },
        token, buffer{command});
  }

  /// Linearizable reads (§6.4 ReadIndex). Completes with a read index once this node has
  /// applied at least that far and the index is known to be at or past every write that
  /// completed before the call: reading the local state machine then is linearizable. On the
  /// leader, a heartbeat round confirms it still leads (or, with options::lease_reads, a valid
  /// lease does); on a follower the leader is asked for the index (follower reads). Errors:
  /// errc::not_leader (no leader known), errc::leadership_lost, errc::timeout (no answer within
  /// an election timeout), errc::stopped. docs/reads.md has the details.
  template <class CompletionToken = asio::use_awaitable_t<>>
  auto read_barrier(CompletionToken&& token = {}) {
    return initiate<index_t>(std::forward<CompletionToken>(token),
                             [this](op_completion<index_t> done) { start_read(std::move(done)); });
  }

  /// Changes the membership to `target` (voters and learners; `outgoing` must be empty) by
  /// joint consensus (§4.3): C_old,new, then C_new once that committed. Any valid target works:
  /// a voter that becomes a learner votes with C_old until the joint phase ends
  /// (raft/core/confchange.hpp). Only on the leader, one
  /// change at a time, and only after an entry of the leader's term committed. Completes with
  /// the index of the final configuration entry once it is committed. A change that touches
  /// only learners takes one step. A leader that is not a voter of `target` steps down once
  /// C_new commits. Errors: errc::not_leader, errc::change_in_progress,
  /// errc::invalid_argument, errc::transferring, errc::leadership_lost (the change may still
  /// complete under the next leader), errc::stopped.
  template <class CompletionToken = asio::use_awaitable_t<>>
  auto change_membership(configuration target, CompletionToken&& token = {}) {
    return change_config(std::forward<CompletionToken>(token),
                         [target = std::move(target)](const configuration&) -> result<configuration> {
                           return target;
                         });
  }

  /// Adds `id` as a learner: it receives the log but does not vote (one configuration entry).
  template <class CompletionToken = asio::use_awaitable_t<>>
  auto add_learner(node_id id, CompletionToken&& token = {}) {
    return change_config(std::forward<CompletionToken>(token), [id](const configuration& c) -> result<configuration> {
      if (c.is_member(id)) return error{errc::invalid_argument};
      configuration next = c;
      next.learners.push_back(id);
      return next;
    });
  }

  /// Makes learner `id` a voter (joint consensus). Promote a learner once it has caught up
  /// (see metrics of the leader, or wait for its applied index): a lagging new voter slows commits.
  template <class CompletionToken = asio::use_awaitable_t<>>
  auto promote(node_id id, CompletionToken&& token = {}) {
    return change_config(std::forward<CompletionToken>(token), [id](const configuration& c) -> result<configuration> {
      auto it = std::find(c.learners.begin(), c.learners.end(), id);
      if (it == c.learners.end()) return error{errc::invalid_argument};
      configuration next = c;
      next.learners.erase(next.learners.begin() + (it - c.learners.begin()));
      next.voters.push_back(id);
      return next;
    });
  }

  /// Removes `id` (voter or learner) from the cluster; removing the leader itself is allowed.
  template <class CompletionToken = asio::use_awaitable_t<>>
  auto remove(node_id id, CompletionToken&& token = {}) {
    return change_config(std::forward<CompletionToken>(token), [id](const configuration& c) -> result<configuration> {
      if (!c.is_member(id)) return error{errc::invalid_argument};
      configuration next = c;
      std::erase(next.voters, id);
      std::erase(next.learners, id);
      return next;
    });
  }

  /// Hands leadership to voter `target` (§3.10): stops accepting proposals, brings the target's
  /// log up to date, then tells it to start an election at once (TimeoutNow). Completes once
  /// this node has stepped down for a newer term, with the new leader if already known (else
  /// no_node); or with errc::timeout after an election timeout without that (proposals are
  /// accepted again), errc::not_leader, errc::invalid_argument (not a voter),
  /// errc::transferring (another transfer runs), errc::stopped.
  template <class CompletionToken = asio::use_awaitable_t<>>
  auto transfer_leadership(node_id target, CompletionToken&& token = {}) {
    return initiate<node_id>(std::forward<CompletionToken>(token), [this, target](op_completion<node_id> done) {
      start_transfer(target, std::move(done));
    });
  }

  /// Counters and gauges (raft/events.hpp). Call on the node's executor.
  [[nodiscard]] node_metrics metrics() const {
    node_metrics m = metrics_;
    m.term = term_;
    m.role = role_;
    m.leader = leader_;
    m.commit_index = commit_;
    m.applied_index = applied_;
    m.last_log_index = log_.last_index();
    m.snapshot_index = snapshot_index_;
    m.log_entries = log_.last_index() - log_.base_index();
    m.pending_proposals = pending_.size();
    m.pending_reads = reads_.size() + forwarded_.size() + apply_waiters_.size();
    return m;
  }

  /// A snapshot of the node's state. Call on the node's executor.
  [[nodiscard]] node_status status() const {
    return node_status{opts_.id, role_,    term_,   leader_,        commit_, applied_,
                       log_.last_index(), persist_.durable(), config_, snapshot_index_};
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
  template <class T>
  using op_completion = detail::unique_function<void(result<T>)>;
  using completion = op_completion<result_type>;

  /// Snapshots are on when both the state machine and the storage support them.
  static constexpr bool snapshots = snapshot_state_machine<StateMachine> && snapshot_storage<Storage>;
  /// A storage whose flush completes at once (memory_storage: `flush_now()`) is flushed inline,
  /// at the end of the event that appended, instead of on a trip through persist_loop.
  static constexpr bool inline_flush = requires(Storage& s) { s.flush_now(); };
  /// A transport that can hold an event's messages until its end (tcp_transport:
  /// `send_batched()` then `flush()`) gets them so from inside an event, and a flush from
  /// settle(): one write per peer per event.
  static constexpr bool batching_transport = requires(Transport& t, message m) {
    t.send_batched(std::move(m));
    t.flush();
  };
  struct no_snapshot_io {};
  template <class S>
  struct snapshot_io {
    using reader = no_snapshot_io;
    using writer = no_snapshot_io;
  };
  template <snapshot_storage S>
  struct snapshot_io<S> {
    using reader = std::decay_t<decltype(*std::declval<S&>().open_snapshot())>;
    using writer = decltype(std::declval<S&>().create_snapshot(std::declval<const snapshot_meta&>()));
  };
  using snapshot_reader_type = typename snapshot_io<Storage>::reader;
  using snapshot_writer_type = typename snapshot_io<Storage>::writer;

  /// A snapshot being sent to one follower, one chunk at a time from the acknowledged offset.
  struct outgoing_snapshot {
    snapshot_reader_type reader;
    snapshot_meta meta;
    std::uint64_t size = 0;
    std::uint64_t acked = 0;   ///< bytes the follower holds in order
    bool inflight = false;     ///< a chunk is unacknowledged
  };

  /// A snapshot being received from the leader.
  struct incoming_snapshot {
    snapshot_meta meta;
    std::uint64_t size = 0;
    std::uint64_t received = 0;
    snapshot_writer_type writer;
  };

  // ---------------------------------------------------------------------------------------------
  // State.

  /// The leader's view of one follower: its replication progress (raft/core/progress.hpp) and
  /// what the node keeps beside it. Exists only while this node leads. Its replicator coroutine
  /// owns it (a removed follower's replicator may still be waking up when peers_ no longer
  /// lists it).
  struct peer : progress {
    peer(node_id peer_id, const executor_type& ex, index_t next_index)
        : progress(next_index), id(peer_id), wake(ex) {}
    node_id id;
    bool heartbeat_due = false;
    bool active = false;        ///< heard from since the last CheckQuorum round
    bool removed = false;       ///< no longer a member: its replicator ends
    std::uint64_t acked_round = 0;               ///< highest heartbeat round it acknowledged
    std::optional<outgoing_snapshot> snapshot;   ///< set while it catches up by snapshot
    detail::signal wake;        ///< wakes replicate_to(): new entries, an ack, a heartbeat tick
  };


  struct pending_proposal {
    index_t index;
    term_t term;
    completion done;
  };

  /// A read waiting on this node, in one of two queues (one type, so one instantiation of each
  /// container operation): forwarded_ wait for the leader's answer to request `tag` until
  /// `deadline`; apply_waiters_ wait until `index` is applied. (The leader's own reads wait in
  /// reads_, a read_index.)
  struct pending_read {
    index_t index;
    std::uint64_t tag = 0;
    time_point deadline{};
    op_completion<index_t> done;
  };

  struct transfer_state {
    node_id target;
    term_t term;
    time_point deadline;
    op_completion<node_id> done;
  };

  executor_type ex_;
  options opts_;
  StateMachine& sm_;
  Storage& storage_;
  Transport& transport_;
  detail::jitter_rng rng_;  ///< election jitter: std::mt19937_64 seeded with options::seed

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

  detail::persistence_pipeline persist_;  ///< what storage holds, what the next flush round hands it

  // Follower side.
  index_t verified_{0};     ///< highest index known to match the current leader's log (this term)
  bool ack_owed_ = false;   ///< entries were accepted; acknowledge once they are durable
  std::uint64_t leader_round_ = 0;  ///< highest heartbeat round heard from the current leader
  time_point election_deadline_{};
  time_point armed_deadline_{};   ///< the deadline election_timer_ currently sleeps until
  time_point last_leader_contact_{};

  // Candidate side.
  std::optional<election_round> round_;
  std::uint64_t round_seq_ = 0;

  // Leader side.
  std::vector<peer*> peers_;  ///< in order of id; owned by their replicate_to() coroutines
  detail::chunked_deque<pending_proposal> pending_;  ///< in index order; no allocation per proposal
  bool changing_membership_ = false;
  std::optional<transfer_state> transfer_;
  read_index<time_point, op_completion<index_t>> reads_;  ///< heartbeat rounds, the lease, reads

  // Reads, any role.
  std::vector<pending_read> apply_waiters_;
  std::vector<pending_read> forwarded_;  ///< in order of deadline
  std::uint64_t next_read_id_ = 0;  ///< the last forwarded read's id (see first_read_id())

  // Snapshots.
  index_t snapshot_index_{0};
  term_t snapshot_term_{0};
  configuration snapshot_config_;
  bool snapshotting_ = false;  ///< take_snapshot() runs
  bool installing_ = false;    ///< install_snapshot() runs
  std::optional<incoming_snapshot> incoming_;

  node_metrics metrics_;

  // Coroutine plumbing.
  Timer election_timer_;
  Timer heartbeat_timer_;
  detail::signal persist_signal_;
  detail::signal commit_signal_;   ///< the commit index moved (membership changes wait on it)
  detail::signal round_signal_;
  std::vector<detail::unique_function<void()>> stop_waiters_;  ///< stop() callers
  int running_ = 0;
  bool handling_ = false;       ///< inside an event: settle() runs at its end
  bool settle_posted_ = false;  ///< a settle() for work done outside any event is queued
  bool started_ = false;
  bool stopping_ = false;
  std::exception_ptr failure_;
  std::vector<log_entry> append_batch_;

  // ---------------------------------------------------------------------------------------------
  // Lifecycle.

  [[gnu::cold, gnu::noinline]]
  void recover(persistent_state ps) {
    term_ = ps.state.term;
    voted_for_ = ps.state.voted_for;
    log_ = log_view(ps.base_index, ps.base_term);
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
          log_ = log_view(m.index, m.term);
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

  /// Runs `task` as one of the node's coroutines: stop() waits for it, and an exception from it
  /// stops the node. Spawned with asio::detached (whose co_spawn machinery a program that uses
  /// Asio has instantiated already); the bookkeeping is done by guarded().
  void spawn(asio::awaitable<void> task) {
    ++running_;
    asio::co_spawn(ex_, guarded(std::move(task)), asio::detached);
  }

  asio::awaitable<void> guarded(asio::awaitable<void> task) {
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
  [[gnu::cold, gnu::noinline]]
  void fail(std::exception_ptr e) {
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

  [[gnu::cold, gnu::noinline]]
  void begin_stop() {
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
    persist_signal_.notify();
    commit_signal_.notify();
    round_signal_.notify();
    for (peer* p : peers_) p->wake.notify();
    peers_.clear();
  }

  /// stop()'s caller waits in stop_waiters_ until the last coroutine has finished; it resumes
  /// on its own executor, which is kept busy until then.
  [[gnu::cold, gnu::noinline]]
  void request_stop(detail::resume_fn resume, const executor_type& caller) {
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

  /// Once stopping and the last coroutine has finished, stop() completes for every caller.
  [[gnu::cold, gnu::noinline]]
  void finish_stop_if_idle() {
    if (!stopping_ || running_ > 0 || stop_waiters_.empty()) return;
    auto waiters = std::move(stop_waiters_);
    stop_waiters_.clear();
    for (auto& w : waiters) w();
  }

  // ---------------------------------------------------------------------------------------------
  // Receiving: every message goes through step().

  asio::awaitable<void> receive_loop() {
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

  /// The end of every event the node handles (a batch of messages, a flush, a proposal made
  /// from outside the node's handlers): applies what committed and completes those proposals,
  /// hands the log's new entries to storage (flushed right here when the storage flushes
  /// synchronously), then sends every follower what it lacks. Proposals completed here that
  /// propose again are persisted and sent in the same pass, so a proposal's round trip costs no
  /// extra trip through the executor, and everything one event caused travels together.
  void settle() {
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
  void schedule_settle() {
    if (handling_ || settle_posted_ || stopping_) return;
    settle_posted_ = true;
    ++running_;
    // Posted type-erased, as detail::signal posts its waiters: one instantiation of asio::post.
    asio::post(ex_, detail::resume_fn([this] {
      --running_;
      settle_posted_ = false;
      if (!stopping_) {
        try {
          handling_ = true;
          settle();
        } catch (...) {
          handling_ = false;
          fail(std::current_exception());
        }
      }
      finish_stop_if_idle();
    }));
  }

  void step(message&& m) {
    if (m.to != opts_.id || m.from == opts_.id || m.from == no_node) return;
    const term_t t = term_of(m.body);
    if (t != term_ && !handle_other_term(m, t)) return;
    m.body.visit([this, from = m.from](auto& b) { this->on(from, std::move(b)); });
  }

  /// A message whose term is not ours (rare: once per term change). Returns whether step()
  /// goes on to handle it.
  [[gnu::cold, gnu::noinline]] bool handle_other_term(const message& m, term_t t) {
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

  // ---------------------------------------------------------------------------------------------
  // Elections (§3.4, §9.6 PreVote, §6.2 CheckQuorum).

  [[nodiscard]] bool leader_is_alive() const {
    if (role_ == role::leader) return true;
    return leader_ != no_node && Clock::now() - last_leader_contact_ < opts_.election_timeout_min;
  }

  void reset_election_deadline() {
    const auto spread = (opts_.election_timeout_max - opts_.election_timeout_min).count();
    const auto jitter = static_cast<std::int64_t>(rng_.below(static_cast<std::uint64_t>(spread)));
    set_election_deadline(opts_.election_timeout_min + std::chrono::nanoseconds(jitter));
  }

  /// Moves the election deadline to `after` from now. The timer is re-armed lazily when it
  /// fires; only a deadline earlier than the armed one needs to wake it now.
  void set_election_deadline(std::chrono::nanoseconds after) {
    election_deadline_ = Clock::now() + std::chrono::duration_cast<typename Clock::duration>(after);
    if (election_deadline_ < armed_deadline_) election_timer_.cancel();
  }

  /// Re-arms to the latest deadline instead of being cancelled on every heartbeat.
  [[gnu::cold, gnu::noinline]]
  asio::awaitable<void> election_timer() {
    while (!stopping_) {
      armed_deadline_ = election_deadline_;
      election_timer_.expires_at(armed_deadline_);
      co_await detail::wait_for(election_timer_);
      if (stopping_) break;
      if (Clock::now() < election_deadline_) continue;  // the deadline moved while we slept
      on_election_timeout();
    }
  }

  [[gnu::cold, gnu::noinline]]
  void on_election_timeout() {
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
  [[nodiscard]] bool may_campaign() const {
    if (config_.is_voter(opts_.id)) return true;
#ifdef RAFT_TEST_MUTATION_ONLY_VOTERS_CAMPAIGN  // test-only mutant (tests/sim)
    return false;
#endif
    if (commit_ >= config_index_) return false;
    return config_at(config_index_.prev()).first.is_voter(opts_.id);
  }

  /// An election: a pre-vote round (if `pre_vote`) asks whether we could win the next term
  /// without changing anyone's term; if it wins, the real round follows. Replies are counted as
  /// they arrive (on(vote_response)) and a round ends as soon as its outcome is decided, or when
  /// a newer round, a leader or a higher term supersedes it.
  [[gnu::cold, gnu::noinline]]
  asio::awaitable<void> campaign(bool pre_vote, bool transfer) {
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
  [[gnu::cold, gnu::noinline]]
  std::uint64_t open_round(bool pre_vote, bool transfer) {
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

  [[gnu::cold, gnu::noinline]]
  void on(node_id from, vote_request r) {
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

  [[gnu::cold, gnu::noinline]]
  void on(node_id from, vote_response r) {
    if (!round_ || r.pre_vote != round_->pre_vote) return;
    // A grant names the round's term. A pre-vote refusal carries the voter's term, which is not
    // above ours (a higher one made us a follower in step()), so it counts against the round.
    const bool for_this_round = r.granted || !r.pre_vote ? r.term == round_->term : true;
    if (!for_this_round) return;
    if (!config_.is_voter(from)) return;
    round_->record(from, r.granted);  // one answer per voter per round
    round_signal_.notify();
  }

  [[gnu::cold, gnu::noinline]]
  void become_follower(term_t term, node_id leader) {
    if (term > term_) {
      term_ = term;
      voted_for_ = no_node;
      verified_ = index_t{0};
      persist_hard_state();
      fail_forwarded_reads(errc::leadership_lost);  // their answers would carry the old term
      leader_round_ = 0;  // rounds are numbered per leader and term
    }
    const bool was_leader = role_ == role::leader;
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

  [[gnu::cold, gnu::noinline]]
  void become_leader() {
    set_role(role::leader);
    set_leader(opts_.id);
    ++metrics_.times_leader;
    log_line(log_level::info, "node ", opts_.id, " is leader in term ", term_);
    reads_.reset();
    sync_peers();
    // §6.4: a no-op entry of the new term lets earlier entries commit (Figure 3.7) and tells the
    // leader which entries are committed.
    append_local(entry_kind::noop, buffer{});
    set_election_deadline(opts_.election_timeout_min);  // the first CheckQuorum round
    spawn(heartbeat_loop(term_));
  }

  /// While leading: one replicator per member of the latest configuration (§4.1), no more.
  [[gnu::cold, gnu::noinline]]
  void sync_peers() {
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

  [[gnu::cold, gnu::noinline]]
  void stop_leading() {
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

  [[gnu::cold, gnu::noinline]]
  void set_role(raft::role r) {
    if (r == role_) return;
    role_ = r;
    emit(event_kind::role_changed);
  }

  [[gnu::cold, gnu::noinline]]
  void set_leader(node_id l) {
    if (l == leader_) return;
    leader_ = l;
    if (l != no_node) ++metrics_.leader_changes;
    emit(event_kind::leader_changed);
    if (transfer_ && role_ != role::leader && l != no_node) finish_transfer(l);
  }

  [[gnu::cold, gnu::noinline]]
  void emit(event_kind kind, index_t index = index_t{0}) {
    if (!opts_.on_event) return;
    opts_.on_event(node_event{kind, opts_.id, term_, role_, leader_, index,
                              kind == event_kind::membership_changed ? config_ : configuration{}});
  }

  /// The follower `id` while this node leads, else null. A linear search: a cluster has a
  /// handful of members.
  [[nodiscard]] peer* find_peer(node_id id) const noexcept {
    for (peer* p : peers_)
      if (p->id == id) return p;
    return nullptr;
  }

  [[nodiscard]] bool still_leading(term_t term) const noexcept {
    return !stopping_ && role_ == role::leader && term_ == term;
  }

  // ---------------------------------------------------------------------------------------------
  // Replication, leader side (§3.5).

  void start_proposal(buffer command, completion done) {
    if (const auto why = proposal_refusal()) return refuse(std::move(done), *why);
    ++metrics_.proposals_accepted;
    const index_t index = append_local(entry_kind::command, std::move(command));
    pending_.push_back(pending_proposal{index, term_, std::move(done)});
  }

  /// Why a proposal is refused on arrival, if it is.
  [[nodiscard]] std::optional<errc> proposal_refusal() const noexcept {
    if (stopping_) return errc::stopped;
    if (role_ != role::leader) return errc::not_leader;
    if (transfer_) return errc::transferring;
    if (pending_.size() >= opts_.max_pending_proposals) return errc::busy;
    return std::nullopt;
  }

  /// Completes an operation refused on arrival. Posted, so the handler never runs inside the
  /// call that started it (a caller retrying in a loop would otherwise recurse).
  template <class T>
  [[gnu::cold, gnu::noinline]]
  void refuse(op_completion<T> done, errc why) {
    if constexpr (std::is_same_v<T, result_type>) ++metrics_.proposals_refused;
    complete_later(std::move(done), result<T>(error{why, leader_}));
  }

  template <class T>
  [[gnu::cold, gnu::noinline]]
  void complete_later(op_completion<T> done, result<T> r) {
    asio::post(ex_, detail::resume_fn([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); }));
  }

  /// Appends an entry of the current term to the leader's log. Storage and followers receive it
  /// in parallel (§10.2.1); the leader counts itself for it only once it is durable.
  index_t append_local(entry_kind kind, buffer data) {
    const index_t index = log_.last_index().next();
    log_.append(log_entry{term_, index, kind, std::move(data)});
    if (kind == entry_kind::configuration) {
      ++metrics_.membership_changes;
      reload_configuration();
    }
    schedule_settle();  // persisted and sent at the end of the current event
    return index;
  }

  [[gnu::cold, gnu::noinline]]
  asio::awaitable<void> heartbeat_loop(term_t term) {
    while (still_leading(term)) {
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
      heartbeat_timer_.expires_after(std::chrono::duration_cast<typename Clock::duration>(
          opts_.heartbeat_interval));
      co_await detail::wait_for(heartbeat_timer_);
    }
  }

  /// Keeps one follower's log in line with ours: sends what it lacks, up to the flow-control
  /// window, then sleeps until there is news (new entries, an ack, a heartbeat tick). A
  /// follower that needs entries we compacted gets the snapshot instead (§5.3).
  asio::awaitable<void> replicate_to(std::unique_ptr<peer> p, term_t term) {
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
  void send_entries(peer& p) {
    if (p.next <= log_.base_index()) return;
    while (p.next <= log_.last_index() && can_send(p)) send_append(p);
  }

  [[nodiscard]] bool can_send(const peer& p) const noexcept {
    return p.can_send(opts_.max_inflight_messages, opts_.max_inflight_bytes);
  }

  void send_append(peer& p) {
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
  void send_heartbeat(peer& p) {
    p.heartbeat_due = false;
    const index_t prev = std::max(p.match, log_.base_index());
    send(p.id, append_request{term_, prev, *log_.term_at(prev), commit_, {}, reads_.round()});
  }

  void on(node_id from, append_response r) {
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
  void maybe_commit() {
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

  void advance_commit(index_t c) {
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
  void leader_after_commit() {
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

  /// Whether an entry of the leader's own term is committed (§6.4: only then does the leader
  /// know the commit index, and may change the membership, §4.1).
  [[nodiscard]] bool committed_in_term() const noexcept {
    return commit_ >= log_.first_index().prev() && log_.term_at(commit_) == term_;
  }

  // ---------------------------------------------------------------------------------------------
  // Membership changes (§4.3 joint consensus, §4.2.1 learners).

  template <class CompletionToken, class MakeTarget>
  auto change_config(CompletionToken&& token, MakeTarget make_target) {
    return initiate<index_t>(std::forward<CompletionToken>(token),
                             [this, make_target = std::move(make_target)](op_completion<index_t> done) mutable {
                               run_operation(membership_change(std::move(make_target)), std::move(done));
                             });
  }

  template <class MakeTarget>
  asio::awaitable<result<index_t>> membership_change(MakeTarget make_target) {
    if (stopping_) co_return error{errc::stopped, leader_};
    if (role_ != role::leader) co_return error{errc::not_leader, leader_};
    if (transfer_) co_return error{errc::transferring, leader_};
    if (changing_membership_) co_return error{errc::change_in_progress, leader_};
    changing_membership_ = true;
    struct release {
      bool& flag;
      ~release() { flag = false; }
    } guard{changing_membership_};
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

  // ---------------------------------------------------------------------------------------------
  // Leadership transfer (§3.10).

  [[gnu::cold, gnu::noinline]]
  void start_transfer(node_id target, op_completion<node_id> done) {
    if (stopping_) return refuse(std::move(done), errc::stopped);
    if (role_ != role::leader) return refuse(std::move(done), errc::not_leader);
    if (transfer_) return refuse(std::move(done), errc::transferring);
    if (target == opts_.id) return complete_later(std::move(done), result<node_id>(opts_.id));
    peer* const to = find_peer(target);
    if (!config_.is_voter(target) || to == nullptr) return refuse(std::move(done), errc::invalid_argument);
    log_line(log_level::info, "node ", opts_.id, " transfers leadership to ", target);
    transfer_ = transfer_state{target, term_, Clock::now() + std::chrono::duration_cast<typename Clock::duration>(
                                                                   opts_.election_timeout_max),
                               std::move(done)};
    peer& p = *to;
    maybe_send_timeout_now(p);
    p.wake.notify();
  }

  /// Completes the transfer in progress (posted: never inside the node's own handlers).
  [[gnu::cold, gnu::noinline]]
  void finish_transfer(result<node_id> r) {
    complete_later(std::move(std::exchange(transfer_, std::nullopt)->done), std::move(r));
  }

  /// The transfer target gets TimeoutNow once its log matches ours. From then on this leader
  /// serves no lease reads in this term: voters grant the target's vote despite having heard
  /// from us (§3.10), so a lease no longer proves that no other leader exists, even after the
  /// transfer timed out (a TimeoutNow delivered late can still elect the target).
  void maybe_send_timeout_now(peer& p) {
    if (!transfer_ || transfer_->target != p.id || p.match != log_.last_index()) return;
    ++metrics_.leadership_transfers;
#ifndef RAFT_TEST_MUTATION_LEASE_AFTER_TIMEOUT_NOW  // test-only mutant (tests/sim): the lease survives
    reads_.revoke_lease();
#endif
    send(p.id, timeout_now{term_});
  }

  [[gnu::cold, gnu::noinline]]
  void on(node_id from, timeout_now) {
    if (role_ == role::leader || from != leader_ || !config_.is_voter(opts_.id)) return;
    log_line(log_level::info, "node ", opts_.id, " got TimeoutNow from ", from);
    reset_election_deadline();
    spawn(campaign(false, true));
  }

  /// Leader housekeeping on every heartbeat tick: abandon a transfer and reads that ran out of time.
  [[gnu::cold, gnu::noinline]]
  void expire_leader_work() {
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

  // ---------------------------------------------------------------------------------------------
  // Linearizable reads (§6.4 ReadIndex, §6.4.1 follower reads and leases).

  [[gnu::cold, gnu::noinline]]
  void start_read(op_completion<index_t> done) {
    if (stopping_) return refuse(std::move(done), errc::stopped);
    if (role_ == role::leader) {
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
  void first_read_id() noexcept {
#ifndef RAFT_TEST_MUTATION_READ_IDS_FROM_ONE  // test-only mutant (tests/sim)
    std::uint64_t x = static_cast<std::uint64_t>(
                          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count()) ^
                      (opts_.id.value * 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;  // splitmix64's finalizer: nearby times, far-apart ids
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    next_read_id_ = x ^ (x >> 31);
#endif
  }

  [[nodiscard]] time_point read_deadline() const {
    return Clock::now() + std::chrono::duration_cast<typename Clock::duration>(opts_.election_timeout_max);
  }

  /// The leader's half of a read: `confirmed` gets a read index once leadership is confirmed.
  [[gnu::cold, gnu::noinline]]
  void leader_read(op_completion<index_t> confirmed) {
    if (opts_.lease_reads && committed_in_term() && reads_.lease_holds(Clock::now())) {
      ++metrics_.lease_reads;
      return confirmed(commit_);
    }
    const bool ready = committed_in_term();
    reads_.add(ready ? commit_ : index_t{0}, read_deadline(), std::move(confirmed));
    if (ready) start_round();
  }

  /// Starts a heartbeat round: every read without one joins it, every follower hears from us.
  [[gnu::cold, gnu::noinline]]
  void start_round() {
    reads_.start_round(Clock::now());
    for (peer* p : peers_) {
      p->heartbeat_due = true;
      p->wake.notify();
    }
    confirm_rounds();  // a single voter confirms alone
  }

  void acknowledge_round(peer& p, std::uint64_t round) {
    if (round <= p.acked_round || round > reads_.round()) return;
    p.acked_round = round;
    confirm_rounds();
  }

  /// The highest round a quorum acknowledged (we acknowledge our own rounds) confirms every
  /// read of that round or earlier, and renews the lease from that round's start.
  [[gnu::cold, gnu::noinline]]
  void confirm_rounds() {
    const index_t q = quorum_index(config_, [&](node_id v) {
      if (v == opts_.id) return index_t{reads_.round()};
      const peer* p = find_peer(v);
      return index_t{p == nullptr ? 0 : p->acked_round};
    });
    const auto lease = std::chrono::duration_cast<typename Clock::duration>(
        opts_.election_timeout_min * (1.0 - opts_.lease_clock_drift));
    for (auto& r : reads_.confirm(q.value, lease)) r.done(r.index);
  }

  [[gnu::cold, gnu::noinline]]
  void wait_applied(index_t index, op_completion<index_t> done) {
    if (applied_ >= index) {
      ++metrics_.read_barriers;
      return complete_later(std::move(done), result<index_t>(index));
    }
    apply_waiters_.push_back(pending_read{index, 0, {}, std::move(done)});
  }

  [[gnu::cold, gnu::noinline]]
  void wake_apply_waiters() {
    std::erase_if(apply_waiters_, [&](pending_read& w) {
      if (w.index > applied_) return false;
      ++metrics_.read_barriers;
      complete_later(std::move(w.done), result<index_t>(w.index));
      return true;
    });
  }

  [[gnu::cold, gnu::noinline]]
  void on(node_id from, read_index_request r) {
    if (role_ != role::leader || transfer_) {
      send(from, read_index_response{term_, r.id, false, index_t{0}});
      return;
    }
    leader_read([this, from, id = r.id, term = term_](result<index_t> res) {
      if (!still_leading(term)) return;
      send(from, read_index_response{term_, id, res.has_value(), res ? *res : index_t{0}});
    });
  }

  [[gnu::cold, gnu::noinline]]
  void on(node_id, read_index_response r) {
    auto it = std::find_if(forwarded_.begin(), forwarded_.end(), [&](const auto& f) { return f.tag == r.id; });
    if (it == forwarded_.end()) return;
    auto done = std::move(it->done);
    forwarded_.erase(it);
    if (!r.ok) return complete_later(std::move(done), result<index_t>(error{errc::not_leader, leader_}));
    wait_applied(r.index, std::move(done));
  }

  [[gnu::cold, gnu::noinline]]
  void expire_forwarded_reads() {
    const auto now = Clock::now();
    auto expired = detail::take_front_while(forwarded_, [&](const pending_read& f) { return now >= f.deadline; });
    for (auto& f : expired) complete_later(std::move(f.done), result<index_t>(error{errc::timeout, leader_}));
  }

  [[gnu::cold, gnu::noinline]]
  void fail_forwarded_reads(errc why) {
    auto all = std::move(forwarded_);
    forwarded_.clear();
    for (auto& f : all) complete_later(std::move(f.done), result<index_t>(error{why, leader_}));
  }

  [[gnu::cold, gnu::noinline]]
  void fail_reads(errc why) {
    fail_forwarded_reads(why);
    for (auto& r : reads_.take_all()) r.done(error{why, leader_});
    auto waiters = std::move(apply_waiters_);
    apply_waiters_.clear();
    for (auto& w : waiters) complete_later(std::move(w.done), result<index_t>(error{why, leader_}));
  }

  // ---------------------------------------------------------------------------------------------
  // Snapshots (§5): taking one, sending it, installing one.

  void maybe_take_snapshot() {
    if constexpr (snapshots) {
      if (opts_.snapshot_entries == 0 || snapshotting_ || installing_ || incoming_ || stopping_) return;
      if (applied_ - snapshot_index_ < opts_.snapshot_entries) return;
      snapshotting_ = true;
      spawn(take_snapshot());
    }
  }

  /// Streams the state machine's point-in-time image to storage in chunks, yielding between
  /// them so heartbeats and replication go on; then compacts the log behind it.
  asio::awaitable<void> take_snapshot() {
    if constexpr (snapshots) {
      struct release {
        bool& flag;
        ~release() { flag = false; }
      } guard{snapshotting_};
      const index_t index = applied_;
      snapshot_meta meta{index, *log_.term_at(index), config_at(index).first};
      auto source = sm_.snapshot();
      auto writer = storage_.create_snapshot(meta);
      std::vector<std::byte> chunk(opts_.snapshot_chunk_bytes);
      for (;;) {
        const std::size_t n = source.read(std::span<std::byte>(chunk));
        if (n == 0) break;
        writer.write(std::span<const std::byte>(chunk).first(n));
        co_await detail::yield_to(ex_);
        if (stopping_) co_return;
      }
      co_await writer.commit();
      if (stopping_ || index <= snapshot_index_) co_return;  // an installed snapshot overtook it
      snapshot_index_ = index;
      snapshot_term_ = meta.term;
      snapshot_config_ = std::move(meta.config);
      ++metrics_.snapshots_created;
      log_line(log_level::info, "node ", opts_.id, " took a snapshot through index ", index);
      emit(event_kind::snapshot_created, index);
      const std::uint64_t keep = opts_.snapshot_trailing_entries;
      if (index.value > keep) {
        persist_.compact_later(index - keep);
        persist_later();
      }
    }
  }

  [[gnu::cold, gnu::noinline]]
  void send_snapshot_chunk(peer& p) {
    if constexpr (snapshots) {
      if (!p.snapshot) {
        auto r = storage_.open_snapshot();
        if (!r) {
          log_line(log_level::error, "node ", opts_.id, " must send a snapshot to ", p.id,
                   " but storage has none");
          return;
        }
        snapshot_meta meta = r->meta();
        const std::uint64_t size = r->size();
        p.snapshot.emplace(outgoing_snapshot{std::move(*r), std::move(meta), size, 0, false});
        p.forget_inflight();
      }
      auto& s = *p.snapshot;
      std::vector<std::byte> chunk(std::min<std::uint64_t>(opts_.snapshot_chunk_bytes, s.size - s.acked));
      const std::size_t n = s.reader.read_at(s.acked, std::span<std::byte>(chunk));
      chunk.resize(n);
      s.inflight = true;
      ++metrics_.snapshot_chunks_sent;
      send(p.id, install_snapshot_request{term_, s.meta, s.acked, s.size, buffer{chunk}});
    }
  }

  [[gnu::cold, gnu::noinline]]
  void on(node_id from, install_snapshot_response r) {
    if (role_ != role::leader) return;
    peer* const found = find_peer(from);
    if (found == nullptr) return;
    peer& p = *found;
    p.active = true;
    if (!p.snapshot || r.index != p.snapshot->meta.index) return;
    if (r.installed) {
      ++metrics_.snapshots_sent;
      p.snapshot.reset();
      p.match = std::max(p.match, r.index);
      p.probe(p.match.next());
      maybe_commit();
      if (!still_leading(term_) || p.removed) return;
    } else {
      p.snapshot->acked = std::min(r.next_offset, p.snapshot->size);
      // Everything sent: the follower is installing it. Wait for its answer (or a tick).
      p.snapshot->inflight = p.snapshot->acked == p.snapshot->size;
    }
    p.wake.notify();
  }

  [[gnu::cold, gnu::noinline]]
  void on(node_id from, install_snapshot_request r) {
    if (!accept_leader_message(from)) return;
    if constexpr (!snapshots) {
      log_line(log_level::warning, "node ", opts_.id, " cannot install a snapshot from ", from,
               ": its state machine or storage does not support snapshots");
    } else {
      auto reply = [&](std::uint64_t next, bool installed) {
        send(from, install_snapshot_response{term_, r.meta.index, next, installed});
      };
      if (r.meta.index <= snapshot_index_ ||
          (log_.term_at(r.meta.index) == r.meta.term && persist_.durable() >= r.meta.index))
        return reply(r.size, true);  // we already have all of it
      // Busy with a snapshot of its own making, or installing this one: no answer; the leader
      // resends on its next heartbeat tick (or hears "installed" when the install is done).
      if (installing_ || snapshotting_) return;
      if (!incoming_ || incoming_->meta != r.meta || incoming_->size != r.size) {
        if (r.offset != 0) return reply(0, false);  // a new snapshot starts from its beginning
        incoming_.reset();  // at most one writer at a time
        incoming_.emplace(incoming_snapshot{r.meta, r.size, 0, storage_.create_snapshot(r.meta)});
      }
      auto& in = *incoming_;
      if (r.offset != in.received) return reply(in.received, false);  // resume from here
      if (r.data.size() > in.size - in.received) {
        log_line(log_level::warning, "node ", opts_.id, " drops a snapshot chunk past the snapshot's end");
        incoming_.reset();
        return reply(0, false);
      }
      in.writer.write(r.data.bytes());
      in.received += r.data.size();
      if (in.received == in.size) {
        installing_ = true;
        spawn(install_snapshot());
      }
      reply(in.received, false);
    }
  }

  /// Makes the received snapshot durable, resets the log behind it and restores the state
  /// machine from it (§5.3: a log that holds the snapshot's last entry keeps what follows).
  asio::awaitable<void> install_snapshot() {
    if constexpr (snapshots) {
      struct release {
        bool& flag;
        ~release() { flag = false; }
      } guard{installing_};
      incoming_snapshot in = std::move(*incoming_);
      incoming_.reset();
      co_await in.writer.commit();
      if (stopping_) co_return;
      const snapshot_meta& m = in.meta;
      if (m.index <= snapshot_index_) co_return;
      if (applied_ < m.index) complete_skipped_proposals(m.index, m.term);  // before the log changes
      if (log_.term_at(m.index) != m.term) {
        persist_.reset_log(log_.base_index(), m.index, m.term);
        log_ = log_view(m.index, m.term);
        verified_ = m.index;
      } else {
        persist_.compact_later(m.index);
      }
      persist_later();
      if (applied_ < m.index) {
        auto reader = storage_.open_snapshot();
        if (!reader || reader->meta().index != m.index)
          throw std::runtime_error("raft: storage lost the snapshot it just committed");
        restore_state_machine(*reader);
        applied_ = m.index;
      }
      if (commit_ < m.index) advance_commit(m.index);
      snapshot_index_ = m.index;
      snapshot_term_ = m.term;
      snapshot_config_ = m.config;
      reload_configuration();
      ++metrics_.snapshots_installed;
      log_line(log_level::info, "node ", opts_.id, " installed a snapshot through index ", m.index);
      emit(event_kind::snapshot_installed, m.index);
      wake_apply_waiters();
      if (leader_ != no_node) send(leader_, install_snapshot_response{term_, m.index, in.size, true});
    }
  }

  /// A partly received snapshot that the log has overtaken (the commit index reached its last
  /// entry) can never be needed again. Dropped, or this node would never take a snapshot of its
  /// own again (maybe_take_snapshot waits while one is being received) and its log would grow
  /// without bound.
  [[gnu::cold, gnu::noinline]]
  void drop_overtaken_snapshot() {
#ifndef RAFT_TEST_MUTATION_KEEP_OVERTAKEN_SNAPSHOT  // test-only mutant (tests/sim)
    log_line(log_level::debug, "node ", opts_.id, " drops the partly received snapshot through index ",
             incoming_->meta.index, ": the log reached it");
    incoming_.reset();
#endif
  }

  /// An installed snapshot through `through` replaces applying the entries it covers: the
  /// proposals among them complete now, with what this node knows of them. One whose entry
  /// this node knew committed (within its commit index, or within a log that matches the
  /// snapshot's last entry, hence the leader's) committed: its result is unknown here, since
  /// the state machine jumps past it. Any other may or may not have committed.
  [[gnu::cold, gnu::noinline]]
  void complete_skipped_proposals(index_t through, term_t through_term) {
#ifndef RAFT_TEST_MUTATION_SKIPPED_PROPOSALS_LOST  // test-only mutant (tests/sim)
    const bool log_matches = log_.term_at(through) == through_term;
    while (!pending_.empty() && pending_.front().index <= through) {
      pending_proposal p = std::move(pending_.front());
      pending_.pop_front();
      const bool ours = log_.term_at(p.index) == p.term;
      const bool committed = ours && (p.index <= commit_ || log_matches);
      p.done(error{committed ? errc::committed_result_unknown : errc::leadership_lost, leader_});
    }
#else
    (void)through, (void)through_term;
#endif
  }

  /// Replaces the state machine's state with a stored snapshot's.
  template <class Reader>
  void restore_state_machine(const Reader& reader) {
    auto sink = sm_.restore();
    std::vector<std::byte> chunk(opts_.snapshot_chunk_bytes);
    for (std::uint64_t offset = 0; offset < reader.size();) {
      const std::size_t n = reader.read_at(offset, std::span<std::byte>(chunk));
      if (n == 0) throw std::runtime_error("raft: a stored snapshot is shorter than its size");
      sink.write(std::span<const std::byte>(chunk).first(n));
      offset += n;
    }
    sink.finish();
  }

  // ---------------------------------------------------------------------------------------------
  // Replication, follower side (Figure 3.1 AppendEntries receiver).

  /// Common to AppendEntries and InstallSnapshot from the leader of our term: follow it and
  /// restart the election timeout. False if this node leads the same term (impossible).
  bool accept_leader_message(node_id from) {
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
    reset_election_deadline();
    expire_forwarded_reads();
    return true;
  }

  /// Takes `r` by reference: its entries are moved into the log, and the receive loop
  /// recycles the emptied vector.
  void on(node_id from, append_request&& r) {
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
    ack_owed_ = persist_.durable() < verified_;  // acknowledge the rest once it is durable
    if (leader_ == no_node) return;
    send(leader_, append_response{term_, true, std::min(persist_.durable(), verified_), index_t{0},
                                  index_t{0}, term_t{0}, leader_round_});
  }

  [[gnu::cold, gnu::noinline]]
  void truncate_log(index_t after) {
    log_.truncate_after(after);
    if (persist_.truncated(after)) storage_.truncate_after(after);
    if (config_index_ > after) reload_configuration();
  }

  /// The latest configuration entry in the log is the one in effect (§4.1).
  [[gnu::cold, gnu::noinline]]
  void reload_configuration() {
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
  [[gnu::cold, gnu::noinline]]
  [[nodiscard]] std::pair<configuration, index_t> config_at(index_t index) const {
    if (const auto i = log_.last_configuration_through(std::min(index, log_.last_index()))) {
      const log_entry& e = log_.at(*i);
      auto c = decode_configuration(e.data.bytes());
      if (!c) throw std::runtime_error(detail::join({"raft: undecodable configuration entry at index ", *i}));
      return {std::move(*c), *i};
    }
    return {snapshot_config_, snapshot_index_};
  }

  // ---------------------------------------------------------------------------------------------
  // Persistence and apply.

  /// Group commit: everything appended since the last round goes to storage in one call and
  /// becomes durable with one flush. While a flush runs, new entries queue up for the next one.
  /// Runs only for a storage whose flush is asynchronous: one that flushes synchronously
  /// (memory_storage: `flush_now()`) is flushed by settle() (persist_now()).
  asio::awaitable<void> persist_loop() {
    while (!stopping_) {
      if (!persist_pending()) {
        co_await persist_signal_.wait();
        continue;
      }
      const index_t target = submit_to_storage();
      const auto started = std::chrono::steady_clock::now();
      co_await storage_.flush();
      const auto took = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started).count());
      metrics_.storage_flush_ns_total += took;
      metrics_.storage_flush_ns_max = std::max(metrics_.storage_flush_ns_max, took);
      if (stopping_) break;
      handling_ = true;
      flushed(target);
      settle();
    }
  }

  [[nodiscard]] bool persist_pending() const noexcept {
    return persist_.pending(log_.last_index(), log_.base_index(), snapshot_index_);
  }

  /// Persistence asked for outside any event (a compaction, a log reset after an installed
  /// snapshot, a bootstrap entry at start): persist_loop does it, or, for a storage that
  /// flushes synchronously, a settle().
  void persist_later() {
    if constexpr (inline_flush)
      schedule_settle();
    else
      persist_signal_.notify();
  }

  /// In settle(): makes the log's new entries durable now if the storage flushes synchronously;
  /// otherwise persist_loop does it.
  void persist_now() {
    if (!persist_pending()) return;
    if constexpr (inline_flush) {
      const index_t target = submit_to_storage();
      storage_.flush_now();  // not timed: it only moves entries in memory
      flushed(target);
    } else {
      persist_signal_.notify();
    }
  }

  /// Hands everything not yet handed over to storage (a log reset after an installed snapshot,
  /// new entries, a compaction); returns the index the next flush makes durable.
  index_t submit_to_storage() {
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
  void flushed(index_t target) {
    ++metrics_.storage_flushes;
    persist_.flushed(target);
    if (role_ == role::leader)
      maybe_commit();
    else if (ack_owed_)
      acknowledge();
  }

  void persist_hard_state() { storage_.save_hard_state(hard_state{term_, voted_for_}); }

  /// Applies committed entries in log order through `limit`, exactly once, and completes their
  /// proposals.
  void apply_committed(index_t limit) {
    const index_t until = std::min(commit_, limit);
    if (applied_ >= until) return;
    while (applied_ < until && !stopping_) apply(applied_.next());
    if (!apply_waiters_.empty()) wake_apply_waiters();
    maybe_take_snapshot();
  }

  void apply(index_t i) {
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

  // ---------------------------------------------------------------------------------------------
  // Helpers.

  /// Logs one message if the logger takes `level`. Every message is joined by the same
  /// out-of-line function (raft/detail/log_line.hpp), not by a template per list of parts.
  template <class... Parts>
  void log_line(log_level level, const Parts&... parts) const {
    if (opts_.logger.enabled(level)) detail::write_log(opts_.logger, level, {detail::log_part(parts)...});
  }

  /// Not a template on the message type: one function for every kind of message.
  void send(node_id to, message_body&& body) {
    ++metrics_.messages_sent;
    metrics_.bytes_sent += message_bytes(body);
    if constexpr (batching_transport) {
      if (handling_) {  // settle() flushes at the end of the event
        transport_.send_batched(message{opts_.id, to, std::move(body)});
        return;
      }
    }
    transport_.send(message{opts_.id, to, std::move(body)});
  }

  /// An estimate of a message's size for the metrics: payloads plus a fixed header.
  static std::uint64_t message_bytes(const message_body& body) noexcept {
    std::uint64_t n = 48;
    if (const auto* a = body.get_if<append_request>())
      for (const auto& e : a->entries) n += entry_size(e);
    else if (const auto* s = body.get_if<install_snapshot_request>())
      n += s->data.size();
    return n;
  }

  /// Wraps a completion handler so it runs on its own executor: inline when that is where the
  /// node is running (a coroutine on the node's executor resumes right away, no queueing),
  /// otherwise posted there. Completions are made only from the node's loops after it removed
  /// the proposal from its queues, so a handler that proposes again is safe.
  /// A handler without an executor of its own runs on the node's, where completions are made:
  /// it is stored and called as it is (a small callback costs no allocation and no dispatch).
  template <class T, class Handler>
  op_completion<T> make_completion(Handler h) {
    if constexpr (std::is_same_v<asio::associated_executor_t<Handler, executor_type>, executor_type> &&
                  !requires { typename Handler::executor_type; }) {
      return h;
    } else {
      auto ex = asio::get_associated_executor(h, ex_);
      return [h = std::move(h), ex](result<T> r) mutable {
        asio::dispatch(ex, [h = std::move(h), r = std::move(r)]() mutable { h(std::move(r)); });
      };
    }
  }

  /// Starts an operation that completes with result<T>: `start(completion)` runs on the node's
  /// executor.
  template <class T, class CompletionToken, class Start>
  auto initiate(CompletionToken&& token, Start start) {
    return asio::async_initiate<CompletionToken, void(result<T>)>(
        [this](auto handler, Start start) {
          asio::dispatch(ex_, [this, start = std::move(start), h = std::move(handler)]() mutable {
            start(make_completion<T>(std::move(h)));
          });
        },
        token, std::move(start));
  }

  /// Runs an operation's coroutine as one of the node's (stop() waits for it).
  template <class T>
  void run_operation(asio::awaitable<result<T>> task, op_completion<T> done) {
    ++running_;
    asio::co_spawn(ex_, std::move(task),
                   [this, done = std::move(done)](std::exception_ptr e, result<T> r) mutable {
                     --running_;
                     if (e) {
                       done(error{errc::stopped, leader_});
                       fail(e);
                     } else {
                       done(std::move(r));
                     }
                     finish_stop_if_idle();
                   });
  }
};

}  // namespace v1
}  // namespace raft
