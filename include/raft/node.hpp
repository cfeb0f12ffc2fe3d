// raft/node.hpp - raft::node, one member of a Raft cluster.
//
// This file declares the class: its operations, its state, and its private functions grouped by
// concern. Their definitions are in raft/node/, one part per concern (each part includes this
// file; this file includes every part at its end):
//
//   lifecycle.hpp    recovery at start(), the node's coroutines, fail-stop, async_stop()
//   receive.hpp      the receive loop, step(), terms, settle() (the end of every event)
//   elections.hpp    election timer and CheckQuorum, PreVote and vote rounds, becoming leader
//   replication.hpp  proposals, replicators, heartbeats, commit; the follower's AppendEntries
//   membership.hpp   joint-consensus changes
//   transfer.hpp     leadership transfer
//   reads.hpp        ReadIndex, the lease, forwarded reads, waiting for apply
//   snapshots.hpp    taking, sending and installing snapshots
//   persist.hpp      the persist loop (group commit) and applying committed entries
//   quiescence.hpp   idle groups stop heartbeats and election timers (options::quiesce)
//
// The pure pieces it is built from are tested on their own: raft/core/ (rules, quorum, progress,
// read_index, confchange, configuration, log) and raft/detail/persistence.hpp.
//
// The protocol is written as a handful of coroutines on the node's executor (see docs/architecture.md):
//
//   receive_loop        takes messages from the transport and steps the protocol with each one
//                       (a transport that hands messages over itself calls deliver() instead)
//   election_timer      starts an election when no leader is heard from (§3.4); on a leader, it
//                       runs CheckQuorum (§6.2)
//   campaign            one PreVote (§9.6) or vote round (§3.4), replies gathered concurrently
//   replicate_to(peer)  one per follower while leading: pipelined, batched AppendEntries (§3.5)
//   heartbeat_loop      while leading: makes every replicator send at least a heartbeat
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
#include <asio/execution/executor.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/use_awaitable.hpp>

#include "raft/detail/asio_check.hpp"
#include "raft/detail/cancellable.hpp"

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
#include "raft/core/ticks.hpp"
#include "raft/detail/jitter_rng.hpp"
#include "raft/detail/log_line.hpp"
#include "raft/detail/persistence.hpp"
#include "raft/detail/scope_exit.hpp"
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
/// The policy types are checked when the node is instantiated, one requirement at a time, so that a
/// type that misses one fails with a message naming the concept and the member
/// (raft/concepts.hpp: detail::check_policies).
template <class StateMachine, class Storage, class Transport, class Timer = asio::steady_timer>
class node {
  static_assert(detail::check_policies<StateMachine, Storage, Transport, Timer>());

 public:
  using result_type = apply_result_t<StateMachine>;
  using timer_type = Timer;
  using clock_type = typename Timer::clock_type;
  /// The node's executor as get_executor() returns it: an asio::any_io_executor whose default
  /// completion token is asio::use_awaitable. Every operation's token defaults to
  /// asio::default_completion_token_t<executor_type>, so a coroutine writes
  /// `co_await n.async_propose(cmd)`, and the operation returns an asio::awaitable with every
  /// Asio release. A plain any_io_executor would not do: Asio 1.22 and 1.30 give it no default
  /// token (`void`) and 1.38 gives it asio::deferred. The node itself runs on the plain one.
  using executor_type = asio::use_awaitable_t<>::executor_with_default<asio::any_io_executor>;

  /// The node keeps references to `sm`, `store` and `net`: they must outlive it. It runs on `ex`
  /// (use a strand if the io_context has several threads). Nothing happens before start().
  node(asio::any_io_executor ex, options opts, StateMachine& sm, Storage& store, Transport& net)
      : ex_(std::move(ex)),
        opts_(std::move(opts)),
        sm_(sm),
        storage_(store),
        transport_(net),
        rng_(election_seed(opts_)),
        heartbeat_offset_(heartbeat_grid_offset(opts_.heartbeat_interval, election_seed(opts_))),
        election_timer_(ex_),
        heartbeat_timer_(ex_),
        commit_signal_(ex_),
        round_signal_(ex_) {}

  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// A started node must be stopped (`co_await async_stop()`) before it is destroyed: its
  /// coroutines refer to it. Destroying a running node is a programming error and aborts with a
  /// message.
  ~node() {
    if (running_ != 0) {
      std::fputs("raft::node destroyed while running: co_await node.async_stop() first\n", stderr);
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
    if constexpr (delivering_transport) {
      transport_.deliver_to(detail::delivery{
          this, [](void* self, message& m) noexcept { static_cast<node*>(self)->deliver(m); },
          [](void* self) noexcept { static_cast<node*>(self)->end_delivery(); }});
    } else {
      spawn(receive_loop());
    }
    spawn(election_timer());
    if (persist_pending()) schedule_settle();  // a bootstrap entry, a log reset a crash interrupted
  }

  /// Stops the node: every pending proposal completes with errc::stopped, the transport is
  /// closed, and this completes (signature `void()`) once every coroutine of the node has
  /// finished, after which the node may be destroyed. Safe to call more than once, from any
  /// executor; not cancellable. `co_await node.async_stop();`
  template <asio::completion_token_for<void()> CompletionToken = asio::default_completion_token_t<executor_type>>
  auto async_stop(CompletionToken&& token = {}) {
    // The caller's handler waits in stop_waiters_ until the last coroutine of the node has
    // finished. Awaited, it suspends through detail::suspend, which every suspension of the
    // library shares, instead of instantiating use_awaitable's machinery once more.
    if constexpr (std::is_same_v<std::decay_t<CompletionToken>, asio::use_awaitable_t<>>) {
      return detail::suspend(
          [](void* self, detail::resume_fn resume, const asio::any_io_executor& caller) {
            static_cast<node*>(self)->request_stop(std::move(resume), caller);
          },
          this);
    } else {
      return asio::async_initiate<CompletionToken, void()>(
          initiation([this](auto handler) {
            const asio::any_io_executor caller = asio::get_associated_executor(handler, ex_);
            request_stop(detail::resume_fn(std::move(handler)), caller);
          }),
          token);
    }
  }

  // Every operation below completes with `void(result<T>)` and takes any Asio completion token;
  // the default (see executor_type) makes it awaitable: `auto r = co_await node.async_propose(bytes);`.
  // The handler runs on its associated executor, which counts as busy (outstanding work) until
  // it has run. Its associated allocator is not used: what the node keeps for an operation may
  // outlive the handler's call (a cancelled proposal stays in the log), and Asio wants memory
  // from that allocator freed before the handler runs.
  //
  // Cancellation: if the handler's cancellation slot is connected (asio::bind_cancellation_slot,
  // the awaitable operators, asio::cancel_after), a terminal or partial cancellation request
  // completes the operation at once with errc::cancelled. The node carries on with what it
  // started and drops its own completion later: the outcome is unknown (a cancelled proposal
  // may still commit and be applied, a cancelled membership change may still complete, a
  // cancelled transfer goes on until it succeeds or times out). A total cancellation (the
  // operation had no effect) is not one the node can promise, so it is ignored. A cancellable
  // operation costs one allocation (the state the node and the slot share); one whose slot is
  // not connected costs nothing extra.

  /// Proposes `command` for the replicated log. Completes with the state machine's result for the
  /// command once it is applied on this node, or with an error: errc::not_leader (with the
  /// known leader in `leader_hint`), errc::leadership_lost (outcome unknown: the entry may
  /// still commit under the next leader), errc::committed_result_unknown (it committed, but this
  /// node installed a snapshot covering it instead of applying it), errc::transferring,
  /// errc::busy, errc::stopped, errc::cancelled (outcome unknown).
  /// The command's bytes are copied before this returns.
  template <asio::completion_token_for<void(result<result_type>)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_propose(std::span<const std::byte> command, CompletionToken&& token = {}) {
    return asio::async_initiate<CompletionToken, void(result<result_type>)>(
        initiation([this](auto handler, buffer cmd) {
          asio::dispatch(ex_, [this, cmd = std::move(cmd), done = completion_for<result_type>(std::move(handler))]() mutable {
            start_proposal(std::move(cmd), std::move(done));
          });
        }),
        token, buffer{command});
  }

  /// Linearizable reads (§6.4 ReadIndex). Completes with a read index once this node has
  /// applied at least that far and the index is known to be at or past every write that
  /// completed before the call: reading the local state machine then is linearizable. On the
  /// leader, a heartbeat round confirms it still leads (or, with options::lease_reads, a valid
  /// lease does); on a follower the leader is asked for the index (follower reads). Errors:
  /// errc::not_leader (no leader known), errc::leadership_lost, errc::timeout (no answer within
  /// an election timeout), errc::stopped, errc::cancelled. docs/reads.md has the details.
  template <asio::completion_token_for<void(result<index_t>)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_read_barrier(CompletionToken&& token = {}) {
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
  /// complete under the next leader), errc::stopped, errc::cancelled (the change goes on and
  /// may still complete).
  template <asio::completion_token_for<void(result<index_t>)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_change_membership(configuration target, CompletionToken&& token = {}) {
    return change_config(std::forward<CompletionToken>(token),
                         [target = std::move(target)](const configuration&) -> result<configuration> {
                           return target;
                         });
  }

  /// Adds `id` as a learner: it receives the log but does not vote (one configuration entry).
  template <asio::completion_token_for<void(result<index_t>)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_add_learner(node_id id, CompletionToken&& token = {}) {
    return change_config(std::forward<CompletionToken>(token), [id](const configuration& c) -> result<configuration> {
      if (c.is_member(id)) return error{errc::invalid_argument};
      configuration next = c;
      next.learners.push_back(id);
      return next;
    });
  }

  /// Makes learner `id` a voter (joint consensus). Promote a learner once it has caught up
  /// (see metrics of the leader, or wait for its applied index): a lagging new voter slows commits.
  template <asio::completion_token_for<void(result<index_t>)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_promote(node_id id, CompletionToken&& token = {}) {
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
  template <asio::completion_token_for<void(result<index_t>)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_remove(node_id id, CompletionToken&& token = {}) {
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
  /// errc::transferring (another transfer runs), errc::stopped, errc::cancelled (the transfer
  /// goes on, and proposals are refused, until it succeeds or times out).
  template <asio::completion_token_for<void(result<node_id>)> CompletionToken =
                asio::default_completion_token_t<executor_type>>
  auto async_transfer_leadership(node_id target, CompletionToken&& token = {}) {
    return initiate<node_id>(std::forward<CompletionToken>(token), [this, target](op_completion<node_id> done) {
      start_transfer(target, std::move(done));
    });
  }

  // The operations under their names before the async_ prefix, for one release.
  template <class CompletionToken = asio::default_completion_token_t<executor_type>>
  [[deprecated("use async_propose")]] auto propose(std::span<const std::byte> command, CompletionToken&& token = {}) {
    return async_propose(command, std::forward<CompletionToken>(token));
  }
  template <class CompletionToken = asio::default_completion_token_t<executor_type>>
  [[deprecated("use async_read_barrier")]] auto read_barrier(CompletionToken&& token = {}) {
    return async_read_barrier(std::forward<CompletionToken>(token));
  }
  template <class CompletionToken = asio::default_completion_token_t<executor_type>>
  [[deprecated("use async_change_membership")]] auto change_membership(configuration target,
                                                                      CompletionToken&& token = {}) {
    return async_change_membership(std::move(target), std::forward<CompletionToken>(token));
  }
  template <class CompletionToken = asio::default_completion_token_t<executor_type>>
  [[deprecated("use async_add_learner")]] auto add_learner(node_id id, CompletionToken&& token = {}) {
    return async_add_learner(id, std::forward<CompletionToken>(token));
  }
  template <class CompletionToken = asio::default_completion_token_t<executor_type>>
  [[deprecated("use async_promote")]] auto promote(node_id id, CompletionToken&& token = {}) {
    return async_promote(id, std::forward<CompletionToken>(token));
  }
  template <class CompletionToken = asio::default_completion_token_t<executor_type>>
  [[deprecated("use async_remove")]] auto remove(node_id id, CompletionToken&& token = {}) {
    return async_remove(id, std::forward<CompletionToken>(token));
  }
  template <class CompletionToken = asio::default_completion_token_t<executor_type>>
  [[deprecated("use async_transfer_leadership")]] auto transfer_leadership(node_id target,
                                                                          CompletionToken&& token = {}) {
    return async_transfer_leadership(target, std::forward<CompletionToken>(token));
  }
  [[deprecated("use async_stop")]] [[nodiscard]] asio::awaitable<void> stop() { return async_stop(); }

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
  [[nodiscard]] const in_memory_log& log() const noexcept { return log_; }
  /// The error that stopped the node (a storage failure, say), or null.
  [[nodiscard]] std::exception_ptr failure() const noexcept { return failure_; }
  [[nodiscard]] bool stopping() const noexcept { return stopping_; }
  [[nodiscard]] executor_type get_executor() const noexcept { return executor_type(ex_); }

  /// Tells the node that node `id`'s process stopped answering (raft::group_router's liveness
  /// calls it through the router's on_peer_down). A follower quiesced under leader `id`
  /// (options::quiesce) starts its election timer again, so the group elects within the usual
  /// bound; otherwise nothing happens. Call on the node's executor.
  void peer_down(node_id id);
  /// Whether the node's group is quiet (options::quiesce): a leader that sends no heartbeats, or
  /// a follower whose election timer is stopped.
  [[nodiscard]] bool quiesced() const noexcept { return quiesced_; }

 private:
  using Clock = clock_type;
  using time_point = typename Clock::time_point;
  template <class T>
  using op_completion = detail::unique_function<void(result<T>)>;
  using completion = op_completion<result_type>;

  /// Snapshots are on when both the state machine and the storage support them.
  static constexpr bool snapshots = snapshot_state_machine<StateMachine> && snapshot_storage<Storage>;
  /// A storage whose flush completes at once (memory_storage: `flush_now()`) is flushed inline,
  /// at the end of the event that appended. Any other storage's flush is asynchronous: settle()
  /// starts one (start_flush()) and its completion is an event of its own.
  static constexpr bool inline_flush = requires(Storage& s) { s.flush_now(); };
  /// A storage that makes term and vote durable with the next flush instead of at once
  /// (shared_log_group: `stage_hard_state()`); see persist_hard_state().
  static constexpr bool staged_hard_state =
      !inline_flush && requires(Storage& s, const hard_state& hs) { s.stage_hard_state(hs); };
  /// A transport that can hold an event's messages until its end (tcp_transport:
  /// `send_batched()` then `flush()`) gets them so from inside an event, and a flush from
  /// settle(): one write per peer per event.
  static constexpr bool batching_transport = requires(Transport& t, message m) {
    t.send_batched(std::move(m));
    t.flush();
  };
  /// A transport that hands each message to the node itself (group_transport: `deliver_to()`)
  /// gets no receive loop: see deliver().
  static constexpr bool delivering_transport = requires(Transport& t, detail::delivery d) { t.deliver_to(d); };
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
    peer(node_id peer_id, const asio::any_io_executor& ex, index_t next_index)
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

  asio::any_io_executor ex_;
  options opts_;
  StateMachine& sm_;
  Storage& storage_;
  Transport& transport_;
  detail::jitter_rng rng_;  ///< election jitter: std::mt19937_64 seeded with options::seed
  /// Where on the heartbeat grid this group's aligned ticks fall (options::align_heartbeats).
  std::chrono::nanoseconds heartbeat_offset_;

  static std::uint64_t election_seed(const options& o) noexcept {
    return o.seed != 0 ? o.seed : 0x9E3779B97F4A7C15ull * (o.id.value + 1);
  }

  // Persistent state (Figure 3.1), mirrored in storage.
  term_t term_{0};
  node_id voted_for_ = no_node;
  in_memory_log log_;

  // Volatile state.
  raft::role role_ = role::follower;
  node_id leader_ = no_node;
  index_t commit_{0};
  index_t applied_{0};
  configuration config_;   ///< latest configuration in the log (§4.1)
  index_t config_index_{0};

  detail::persistence_pipeline persist_;  ///< what storage holds, what the next flush round hands it
  bool hard_state_staged_ = false;  ///< term or vote staged since the last flush round began
  bool holding_ = false;            ///< messages wait in held_ until staged term and vote are durable
  std::vector<message> held_;

  // Follower side.
  index_t verified_{0};     ///< highest index known to match the current leader's log (this term)
  bool ack_owed_ = false;   ///< entries were accepted; acknowledge once they are durable
  std::uint64_t leader_round_ = 0;  ///< highest heartbeat round heard from the current leader
  time_point election_deadline_{};
  time_point armed_deadline_{};   ///< the deadline election_timer_ currently sleeps until
  time_point last_leader_contact_{};

  // Quiescence (options::quiesce).
  bool quiesced_ = false;           ///< leader: no heartbeats; follower: no election timer
  int idle_rounds_ = 0;             ///< leader: heartbeat ticks in a row the group was idle
  index_t idle_commit_{0};          ///< the commit index those ticks saw
  std::uint64_t idle_round_ = 0;    ///< the first round since the group was last busy: every peer must acknowledge it

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
  detail::signal commit_signal_;   ///< the commit index moved (membership changes wait on it)
  detail::signal round_signal_;
  std::vector<detail::unique_function<void()>> stop_waiters_;  ///< async_stop() callers
  int running_ = 0;
  bool handling_ = false;       ///< inside an event: settle() runs at its end
  bool settle_posted_ = false;  ///< a settle() for work done outside any event is queued
  bool flush_in_flight_ = false;   ///< start_flush() started a flush that has not completed
  bool starting_flush_ = false;    ///< inside the storage's async_flush() call
  bool started_ = false;
  bool stopping_ = false;
  std::exception_ptr failure_;
  std::vector<log_entry> append_batch_;

  // ---------------------------------------------------------------------------------------------
  // Lifecycle.
  // (defined in raft/node/lifecycle.hpp)
  [[gnu::cold, gnu::noinline]] void recover(persistent_state ps);
  void spawn(asio::awaitable<void> task);
  asio::awaitable<void> guarded(asio::awaitable<void> task);
  [[gnu::cold, gnu::noinline]] void fail(std::exception_ptr e);
  [[gnu::cold, gnu::noinline]] void begin_stop();
  [[gnu::cold, gnu::noinline]] void request_stop(detail::resume_fn resume, const asio::any_io_executor& caller);
  [[gnu::cold, gnu::noinline]] void finish_stop_if_idle();

  // ---------------------------------------------------------------------------------------------
  // Receiving: every message goes through step().
  // (defined in raft/node/receive.hpp)
  asio::awaitable<void> receive_loop();
  void deliver(message& m) noexcept;
  void end_delivery() noexcept;
  void settle();
  void settle_or_fail();
  void schedule_settle();
  void step(message&& m);
  [[gnu::cold, gnu::noinline]] bool handle_other_term(const message& m, term_t t);

  // ---------------------------------------------------------------------------------------------
  // Elections (§3.4, §9.6 PreVote, §6.2 CheckQuorum).
  // (defined in raft/node/elections.hpp)
  [[nodiscard]] bool leader_is_alive() const;
  void reset_election_deadline(time_point now = Clock::now());
  void set_election_deadline(std::chrono::nanoseconds after, time_point now = Clock::now());
  [[gnu::cold, gnu::noinline]] asio::awaitable<void> election_timer();
  [[gnu::cold, gnu::noinline]] void on_election_timeout();
  [[nodiscard]] bool may_campaign() const;
  [[gnu::cold, gnu::noinline]] asio::awaitable<void> campaign(bool pre_vote, bool transfer);
  [[gnu::cold, gnu::noinline]] std::uint64_t open_round(bool pre_vote, bool transfer);
  [[gnu::cold, gnu::noinline]] void on(node_id from, vote_request r);
  [[gnu::cold, gnu::noinline]] void on(node_id from, vote_response r);
  [[gnu::cold, gnu::noinline]] void become_follower(term_t term, node_id leader);
  [[gnu::cold, gnu::noinline]] void become_leader();
  [[gnu::cold, gnu::noinline]] void sync_peers();
  [[gnu::cold, gnu::noinline]] void stop_leading();
  [[gnu::cold, gnu::noinline]] void set_role(raft::role r);
  [[gnu::cold, gnu::noinline]] void set_leader(node_id l);
  [[gnu::cold, gnu::noinline]] void emit(event_kind kind, index_t index = index_t{0});
  [[nodiscard]] peer* find_peer(node_id id) const noexcept;

  [[nodiscard]] bool still_leading(term_t term) const noexcept {
    return !stopping_ && role_ == role::leader && term_ == term;
  }

  // ---------------------------------------------------------------------------------------------
  // Quiescence of idle groups (options::quiesce).
  // (defined in raft/node/quiescence.hpp)
  [[nodiscard]] bool ready_to_quiesce();
  [[gnu::cold, gnu::noinline]] void quiesce();
  [[gnu::cold, gnu::noinline]] void wake(std::uint64_t node_metrics::*why);
  [[gnu::cold, gnu::noinline]] void wake_for(const message& m);
  [[gnu::cold, gnu::noinline]] void follow_quiesce(const append_request& r);

  // ---------------------------------------------------------------------------------------------
  // Replication, leader side (§3.5).
  // (defined in raft/node/replication.hpp)
  void start_proposal(buffer command, completion done);
  [[nodiscard]] std::optional<errc> proposal_refusal() const noexcept;

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

  index_t append_local(entry_kind kind, buffer data);
  [[gnu::cold, gnu::noinline]] asio::awaitable<void> heartbeat_loop(term_t term);
  asio::awaitable<void> replicate_to(std::unique_ptr<peer> p, term_t term);
  void send_entries(peer& p);

  [[nodiscard]] bool can_send(const peer& p) const noexcept {
    return p.can_send(opts_.max_inflight_messages, opts_.max_inflight_bytes);
  }

  void send_append(peer& p);
  void send_heartbeat(peer& p);
  void on(node_id from, append_response r);
  void maybe_commit();
  void advance_commit(index_t c);
  void leader_after_commit();

  /// Whether an entry of the leader's own term is committed (§6.4: only then does the leader
  /// know the commit index, and may change the membership, §4.1).
  [[nodiscard]] bool committed_in_term() const noexcept {
    return commit_ >= log_.first_index().prev() && log_.term_at(commit_) == term_;
  }

  // ---------------------------------------------------------------------------------------------
  // Membership changes (§4.3 joint consensus, §4.2.1 learners).
  // (defined in raft/node/membership.hpp)
  template <class CompletionToken, class MakeTarget>
  auto change_config(CompletionToken&& token, MakeTarget make_target) {
    return initiate<index_t>(std::forward<CompletionToken>(token),
                             [this, make_target = std::move(make_target)](op_completion<index_t> done) mutable {
                               run_operation(membership_change(std::move(make_target)), std::move(done));
                             });
  }

  template <class MakeTarget>
  asio::awaitable<result<index_t>> membership_change(MakeTarget make_target);

  // ---------------------------------------------------------------------------------------------
  // Leadership transfer (§3.10).
  // (defined in raft/node/transfer.hpp)
  [[gnu::cold, gnu::noinline]] void start_transfer(node_id target, op_completion<node_id> done);

  /// Completes the transfer in progress (posted: never inside the node's own handlers).
  [[gnu::cold, gnu::noinline]]
  void finish_transfer(result<node_id> r) {
    complete_later(std::move(std::exchange(transfer_, std::nullopt)->done), std::move(r));
  }

  void maybe_send_timeout_now(peer& p);
  [[gnu::cold, gnu::noinline]] void on(node_id from, timeout_now);
  [[gnu::cold, gnu::noinline]] void expire_leader_work();

  // ---------------------------------------------------------------------------------------------
  // Linearizable reads (§6.4 ReadIndex, §6.4.1 follower reads and leases).
  // (defined in raft/node/reads.hpp)
  [[gnu::cold, gnu::noinline]] void start_read(op_completion<index_t> done);
  void first_read_id() noexcept;

  [[nodiscard]] time_point read_deadline() const {
    return Clock::now() + std::chrono::duration_cast<typename Clock::duration>(opts_.election_timeout_max);
  }

  [[gnu::cold, gnu::noinline]] void leader_read(op_completion<index_t> confirmed);
  [[gnu::cold, gnu::noinline]] void start_round();
  void acknowledge_round(peer& p, std::uint64_t round);
  [[gnu::cold, gnu::noinline]] void confirm_rounds();
  [[gnu::cold, gnu::noinline]] void wait_applied(index_t index, op_completion<index_t> done);
  [[gnu::cold, gnu::noinline]] void wake_apply_waiters();
  [[gnu::cold, gnu::noinline]] void on(node_id from, read_index_request r);
  [[gnu::cold, gnu::noinline]] void on(node_id, read_index_response r);
  [[gnu::cold, gnu::noinline]] void expire_forwarded_reads();
  [[gnu::cold, gnu::noinline]] void fail_forwarded_reads(errc why);
  [[gnu::cold, gnu::noinline]] void fail_reads(errc why);

  // ---------------------------------------------------------------------------------------------
  // Snapshots (§5): taking one, sending it, installing one.
  // (defined in raft/node/snapshots.hpp)
  void maybe_take_snapshot();
  asio::awaitable<void> take_snapshot();
  [[gnu::cold, gnu::noinline]] void send_snapshot_chunk(peer& p);
  [[gnu::cold, gnu::noinline]] void on(node_id from, install_snapshot_response r);
  [[gnu::cold, gnu::noinline]] void on(node_id from, install_snapshot_request r);
  asio::awaitable<void> install_snapshot();
  [[gnu::cold, gnu::noinline]] void drop_overtaken_snapshot();
  [[gnu::cold, gnu::noinline]] void complete_skipped_proposals(index_t through, term_t through_term);
  template <class Reader>
  void restore_state_machine(const Reader& reader);

  // ---------------------------------------------------------------------------------------------
  // Replication, follower side (Figure 3.1 AppendEntries receiver).
  // (defined in raft/node/replication.hpp)
  bool accept_leader_message(node_id from);
  void on(node_id from, append_request&& r);
  [[nodiscard]] static bool well_formed(const append_request& r) noexcept;
  void acknowledge();
  [[gnu::cold, gnu::noinline]] void truncate_log(index_t after);
  [[gnu::cold, gnu::noinline]] void reload_configuration();
  [[gnu::cold, gnu::noinline]] [[nodiscard]] std::pair<configuration, index_t> config_at(index_t index) const;

  // ---------------------------------------------------------------------------------------------
  // Persistence and apply.
  // (defined in raft/node/persist.hpp)
  /// A flush's completion handler: it runs on the node's executor (its associated executor).
  struct flush_completion {
    using executor_type = asio::any_io_executor;
    node* self;
    index_t target;
    std::chrono::steady_clock::time_point started;
    executor_type get_executor() const noexcept { return self->ex_; }
    void operator()(std::exception_ptr e) { self->flush_done(std::move(e), target, started); }
  };
  /// A storage that takes a completion handler for its flush (`async_flush(handler)`, as
  /// file_storage and shared_log_group do) is flushed so: no coroutine per flush.
  static constexpr bool handler_flush = requires(Storage& s, flush_completion h) { s.async_flush(std::move(h)); };
  void start_flush();
  void flush_done(std::exception_ptr e, index_t target, std::chrono::steady_clock::time_point started);

  [[nodiscard]] bool persist_pending() const noexcept {
    return hard_state_staged_ || persist_.pending(log_.last_index(), log_.base_index(), snapshot_index_);
  }

  void persist_now();
  index_t submit_to_storage();
  void flushed(index_t target);
  /// Term and vote are durable before any message that depends on them leaves (Figure 3.1).
  /// A storage that stages them (`stage_hard_state`: durable with the next flush) does not block
  /// the executor: the node goes on, and what it sends meanwhile is held until that flush
  /// completes (flush_done(), release_held()).
  void persist_hard_state() {
    if constexpr (staged_hard_state) {
      storage_.stage_hard_state(hard_state{term_, voted_for_});
      hard_state_staged_ = true;
      holding_ = true;
      schedule_settle();  // flushed by the settle() that ends this event, or by one of its own
    } else {
      storage_.save_hard_state(hard_state{term_, voted_for_});
    }
  }
  /// Sends what was held while term or vote was not yet durable, in order.
  void release_held() {
    holding_ = false;
    std::vector<message> held;
    held.swap(held_);
    for (message& m : held) hand_to_transport(std::move(m));
  }
  void apply_committed(index_t limit);
  void apply(index_t i);

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
    if constexpr (staged_hard_state) {
      if (holding_) {  // term or vote is not durable yet: after the flush (release_held())
        held_.push_back(message{opts_.id, to, std::move(body)});
        return;
      }
    }
    hand_to_transport(message{opts_.id, to, std::move(body)});
  }

  void hand_to_transport(message&& m) {
    if constexpr (batching_transport) {
      if (handling_) {  // settle() flushes at the end of the event
        transport_.send_batched(std::move(m));
        return;
      }
    }
    transport_.send(std::move(m));
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
  /// otherwise dispatched there. Completions are made only from the node's loops after it removed
  /// the proposal from its queues, so a handler that proposes again is safe.
  /// A handler without an executor of its own runs on the node's, where completions are made:
  /// it is stored and called as it is (a small callback costs no allocation and no dispatch).
  template <class T, class Handler>
  op_completion<T> make_completion(Handler h) {
    if constexpr (std::is_same_v<asio::associated_executor_t<Handler, asio::any_io_executor>, asio::any_io_executor> &&
                  !requires { typename Handler::executor_type; }) {
      return h;
    } else {
      auto ex = busy_until_called(asio::get_associated_executor(h, ex_));
      return [h = std::move(h), ex](result<T> r) mutable {
        asio::dispatch(ex, [h = std::move(h), r = std::move(r)]() mutable { h(std::move(r)); });
      };
    }
  }

  /// The handler's executor `ex`, tracking outstanding work (so its io_context does not run out
  /// of work) until the completion holding it is gone, as Asio's own operations do. Not for the
  /// node's own executor, which the node's coroutines keep busy while it runs (so the common case,
  /// a coroutine on the node's executor, costs nothing), nor for an executor of Asio's older
  /// model, which has no such property.
  template <class Executor>
  auto busy_until_called(const Executor& ex) const {
    if constexpr (!asio::execution::is_executor<Executor>::value) {
      return ex;
    } else if constexpr (std::is_same_v<Executor, asio::any_io_executor>) {
      if (ex == ex_) return ex;
      return asio::any_io_executor(asio::prefer(ex, asio::execution::outstanding_work.tracked));
    } else {
      return asio::prefer(ex, asio::execution::outstanding_work.tracked);
    }
  }

  /// The completion the node keeps for an operation: make_completion's, made cancellable when
  /// the handler's cancellation slot is connected (detail::make_cancellable). A handler type
  /// without a cancellation slot compiles to make_completion alone.
  template <class T, class Handler>
  op_completion<T> completion_for(Handler handler) {
    if constexpr (detail::may_have_cancellation_slot<Handler>) {
      auto slot = asio::get_associated_cancellation_slot(handler);
      if (slot.is_connected()) return detail::make_cancellable<T>(make_completion<T>(std::move(handler)), slot, ex_);
    }
    return make_completion<T>(std::move(handler));
  }

  /// `initiate` as an operation's initiation: a function object that also names the node's
  /// executor, as the initiations of Asio's own I/O objects do (asio::cancel_after, for one,
  /// starts its timer there).
  template <class Initiate>
  detail::initiation_on<Initiate> initiation(Initiate initiate) const {
    return {std::move(initiate), ex_};
  }

  /// Starts an operation that completes with result<T>: `start(completion)` runs on the node's
  /// executor.
  template <class T, class CompletionToken, class Start>
  auto initiate(CompletionToken&& token, Start start) {
    return asio::async_initiate<CompletionToken, void(result<T>)>(
        initiation([this](auto handler, Start starter) {
          asio::dispatch(ex_, [starter = std::move(starter), done = completion_for<T>(std::move(handler))]() mutable {
            starter(std::move(done));
          });
        }),
        token, std::move(start));
  }

  /// Runs an operation's coroutine as one of the node's (async_stop() waits for it).
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

// The definitions of node's member functions, one part per concern.
#include "raft/node/lifecycle.hpp"
#include "raft/node/receive.hpp"
#include "raft/node/elections.hpp"
#include "raft/node/replication.hpp"
#include "raft/node/membership.hpp"
#include "raft/node/transfer.hpp"
#include "raft/node/reads.hpp"
#include "raft/node/snapshots.hpp"
#include "raft/node/persist.hpp"
#include "raft/node/quiescence.hpp"
