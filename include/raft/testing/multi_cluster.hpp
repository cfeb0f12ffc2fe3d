// raft/testing/multi_cluster.hpp - a deterministic simulation of processes that run many groups.
//
// P processes, each a replica of every one of G Raft groups, as a Multi-Raft deployment runs
// them: a process has one sim_transport (its node id is the process's) and one group_router, and
// each of its groups is a raft::node over a group_transport on that router, with storage and a
// state machine of its own. Everything runs on one single-threaded io_context on the virtual
// clock, stepped as raft::testing::cluster steps (raft/testing/stepper.hpp: the same seed gives
// the same run).
//
// Faults act on whole processes, as they do on real machines: crash() stops every group of a
// process at once (each storage loses what it had not flushed), restart() boots them all again
// from their storage, pause()/resume() freeze a process (its timers and its messages), and the
// network's cuts and partitions (network()) are between processes.
//
// With options::quiesce in the base options, idle groups go quiet, and each process's router
// pings the others (liveness every heartbeat interval, a peer down after an election timeout of
// silence) and tells its groups' nodes when a peer process is down (node::peer_down).
//
// After every step it checks, per group, what raft::testing::cluster checks for one: at most one
// leader per term (election safety), and that an entry committed on any replica is the same on
// every replica that committed that index, forever (state machine safety). A breach throws
// raft::testing::invariant_violation naming the group and the seed.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "raft/detail/asio_check.hpp"

#include "raft/multi/group_router.hpp"
#include "raft/node.hpp"
#include "raft/storage/memory.hpp"
#include "raft/testing/cluster.hpp"
#include "raft/testing/kv_state_machine.hpp"
#include "raft/testing/network.hpp"
#include "raft/testing/stepper.hpp"
#include "raft/testing/virtual_time.hpp"

namespace raft {
inline namespace v1 {
namespace testing {

/// P processes running G groups each, on the virtual clock. See the file comment.
template <class StateMachine = kv_state_machine, class Storage = memory_storage>
class multi_cluster {
 public:
  using node_type = raft::node<StateMachine, Storage, group_transport<sim_transport, virtual_timer>, virtual_timer>;
  using result_type = apply_result_t<StateMachine>;
  using duration = virtual_clock::duration;

  /// Processes 1..`processes`, each a voter of groups 1..`groups`. `base` is every node's options
  /// (its id and bootstrap configuration are set here).
  multi_cluster(std::size_t processes, std::size_t groups, std::uint64_t seed, options base = {})
      : seed_(seed), network_(seed), base_(std::move(base)) {
    timeline::current().reset();
    std::vector<node_id> ids;
    for (std::size_t p = 1; p <= processes; ++p) ids.push_back(node_id{p});
    ids_ = ids;
    for (std::size_t g = 1; g <= groups; ++g) groups_.push_back(group_id{g});
    for (node_id id : ids) {
      auto proc = std::make_unique<process>();
      proc->id = id;
      for (group_id g : groups_) init_replica(*proc, g);
      boot(*proc);
      processes_.emplace(id, std::move(proc));
    }
  }
  multi_cluster(const multi_cluster&) = delete;
  multi_cluster& operator=(const multi_cluster&) = delete;
  ~multi_cluster() {
    for (auto& [id, p] : processes_) shut_down(*p);
  }

  [[nodiscard]] const std::vector<group_id>& groups() const noexcept { return groups_; }
  [[nodiscard]] std::vector<node_id> processes() const {
    std::vector<node_id> out;
    for (auto& [id, p] : processes_) out.push_back(id);
    return out;
  }
  [[nodiscard]] sim_network& network() noexcept { return network_; }
  [[nodiscard]] bool is_up(node_id p) const { return get(p).up; }
  [[nodiscard]] node_type& node(node_id p, group_id g) {
    auto& r = replica_at(p, g);
    if (!r.node) throw std::logic_error(describe("process " + std::to_string(p.value) + " is down"));
    return *r.node;
  }
  [[nodiscard]] StateMachine& state_machine(node_id p, group_id g) { return *replica_at(p, g).sm; }
  [[nodiscard]] group_router<sim_transport, virtual_timer>& router(node_id p) { return *get(p).router; }

  /// Group `g`'s leader with the highest term among the processes that are up, if any.
  [[nodiscard]] std::optional<node_id> leader(group_id g) const {
    std::optional<node_id> best;
    term_t best_term{0};
    for (auto& [id, p] : processes_) {
      if (!p->up) continue;
      const auto& n = *p->replicas.at(g).node;
      if (n.role() == role::leader && n.term() >= best_term) best = id, best_term = n.term();
    }
    return best;
  }

  /// Runs the simulation for `d` of virtual time.
  void run_for(duration d) {
    run_until([] { return false; }, d);
  }

  /// Runs until `pred()` holds (checked after every step) or `limit` of virtual time has passed.
  template <class Predicate>
  bool run_until(Predicate pred, duration limit) {
    return stepper_.run_until(pred, limit, [this] { check_invariants(); });
  }

  /// Runs until every group has a leader, or `limit` passed. Returns whether they all have one.
  bool wait_for_leaders(duration limit) {
    return run_until([&] { return std::all_of(groups_.begin(), groups_.end(), [&](group_id g) { return leader(g).has_value(); }); },
                     limit);
  }

  /// Proposes `command` to group `g` through process `via`; the outcome fills in when it completes.
  std::shared_ptr<proposal<result_type>> propose(node_id via, group_id g, const buffer& command) {
    auto out = std::make_shared<proposal<result_type>>();
    node(via, g).async_propose(command.bytes(), [out](result<result_type> r) { out->outcome = std::move(r); });
    return out;
  }

  /// Creates group `g` at run time, every process a voter of it: each process that is up starts
  /// its replica now (one that is down, when it restarts).
  void add_group(group_id g) {
    if (std::find(groups_.begin(), groups_.end(), g) != groups_.end())
      throw std::logic_error(describe("group " + std::to_string(g.value) + " exists"));
    groups_.push_back(g);
    for (auto& [id, proc] : processes_) {
      group_replica& r = init_replica(*proc, g);
      if (proc->up) start_replica(*proc, g, r);
    }
  }

  /// Destroys group `g` at run time: every replica stops, and its state and storage are dropped.
  /// Messages still on their way to it find no group (the router counts them).
  void remove_group(group_id g) {
    const auto at = std::find(groups_.begin(), groups_.end(), g);
    if (at == groups_.end()) throw std::logic_error(describe("no group " + std::to_string(g.value)));
    groups_.erase(at);
    for (auto& [id, proc] : processes_) {
      auto it = proc->replicas.find(g);
      if (proc->up) stop_nodes({it->second.node.get()});
      proc->replicas.erase(it);
    }
    committed_.erase(g);
    std::erase_if(checked_, [g](const auto& kv) { return kv.first.first == g; });
    std::erase_if(leaders_, [g](const auto& kv) { return kv.first.first == g; });
  }

  /// Crashes process `p`: every group's replica stops at once, and what their storages had not
  /// made durable is lost, as are the messages on their way to the process.
  void crash(node_id p) {
    auto& proc = get(p);
    if (!proc.up) return;
    for (auto& [g, r] : proc.replicas) r.storage->crash();
    shut_down(proc);
    network_.drop_in_flight_to(p);
  }

  /// Boots every group of a crashed process again from what its storages kept.
  void restart(node_id p) {
    auto& proc = get(p);
    if (proc.up) return;
    boot(proc);
  }

  /// Freezes process `p` (a SIGSTOP): its timers stop, and messages to and from it wait.
  void pause(node_id p) {
    timeline::current().pause(p.value);
    network_.pause(p);
  }
  void resume(node_id p) {
    timeline::current().resume(p.value);
    network_.resume(p);
  }

 private:
  struct group_replica {
    options opts;
    std::unique_ptr<Storage> storage;
    std::unique_ptr<StateMachine> sm;
    std::unique_ptr<group_transport<sim_transport, virtual_timer>> transport;
    std::unique_ptr<node_type> node;
  };
  struct process {
    node_id id;
    bool up = false;
    std::unique_ptr<sim_transport> shared;
    std::unique_ptr<group_router<sim_transport, virtual_timer>> router;
    std::map<group_id, group_replica> replicas;
  };

  process& get(node_id p) {
    auto it = processes_.find(p);
    if (it == processes_.end()) throw std::logic_error(describe("no process " + std::to_string(p.value)));
    return *it->second;
  }
  const process& get(node_id p) const { return const_cast<multi_cluster*>(this)->get(p); }
  group_replica& replica_of(process& proc, group_id g) {
    auto it = proc.replicas.find(g);
    if (it == proc.replicas.end()) throw std::logic_error(describe("no group " + std::to_string(g.value)));
    return it->second;
  }
  group_replica& replica_at(node_id p, group_id g) { return replica_of(get(p), g); }

  /// Group `g`'s replica on `proc`, not started: empty storage, bootstrapped with every process.
  group_replica& init_replica(process& proc, group_id g) {
    auto& r = proc.replicas[g];
    r.storage = std::make_unique<Storage>();
    r.opts = base_;
    r.opts.id = proc.id;
    r.opts.bootstrap = configuration{};
    r.opts.bootstrap->voters = ids_;
    r.opts.seed = seed_ * 1000003 + proc.id.value * 7919 + g.value;
    return r;
  }

  void start_replica(process& proc, group_id g, group_replica& r) {
    const timeline::owner_scope timers_of(proc.id.value);  // the process's timers pause together
    if constexpr (requires { r.storage->power_on(); }) r.storage->power_on();
    r.sm = std::make_unique<StateMachine>();
    r.transport = std::make_unique<group_transport<sim_transport, virtual_timer>>(*proc.router, g);
    r.node = std::make_unique<node_type>(context_.get_executor(), r.opts, *r.sm, *r.storage, *r.transport);
    r.node->start();
    r.opts.bootstrap.reset();  // a restart starts from storage
  }

  /// Stops `nodes` (letting virtual time pass if stopping waits for a flush), then destroys them
  /// with their transports.
  void stop_nodes(std::vector<node_type*> nodes) {
    std::size_t stopping = nodes.size();
    for (node_type* n : nodes)
      asio::co_spawn(context_, n->async_stop(), [&stopping](std::exception_ptr) { --stopping; });
    while (stopping > 0) {
      context_.restart();
      if (context_.poll() != 0) continue;
      const auto next = next_event();
      if (!next) throw std::logic_error(describe("a node does not stop"));
      advance(*next);
    }
  }

  void boot(process& proc) {
    const timeline::owner_scope timers_of(proc.id.value);  // the process's timers pause together
    proc.shared = std::make_unique<sim_transport>(network_, proc.id, context_.get_executor());
    group_router_options ro;
    ro.self = proc.id;
    if (base_.quiesce) {  // quiesced groups need to hear when a leader's process is gone
      ro.watch = ids_;
      std::erase(ro.watch, proc.id);
      ro.liveness_interval = base_.heartbeat_interval;
      ro.liveness_timeout = base_.election_timeout_min;
    }
    proc.router = std::make_unique<group_router<sim_transport, virtual_timer>>(*proc.shared, context_.get_executor(), ro);
    proc.router->on_peer_down([&proc](node_id down) {
      for (auto& [g, r] : proc.replicas)
        if (r.node) r.node->peer_down(down);
    });
    asio::co_spawn(context_, proc.router->run(), asio::detached);
    for (auto& [g, r] : proc.replicas) start_replica(proc, g, r);
    proc.up = true;
  }

  void shut_down(process& proc) {
    if (!proc.up) return;
    std::vector<node_type*> nodes;
    for (auto& [g, r] : proc.replicas) nodes.push_back(r.node.get());
    stop_nodes(nodes);
    for (auto& [g, r] : proc.replicas) {
      r.node.reset();
      r.transport.reset();
    }
    proc.router->close();
    context_.restart();
    context_.poll();  // the router's loop sees the close and ends
    proc.router.reset();
    proc.shared.reset();
    proc.up = false;
  }

  [[nodiscard]] std::optional<virtual_clock::time_point> next_event() const { return stepper_.next_event(); }
  void advance(virtual_clock::time_point t) { stepper_.advance(t); }

  [[nodiscard]] std::string describe(const std::string& what) const {
    return "multi_cluster (seed " + std::to_string(seed_) + "): " + what;
  }

  void check_invariants() {
    for (auto& [p, proc] : processes_) {
      if (!proc->up) continue;
      for (auto& [g, r] : proc->replicas) {
        const node_type& n = *r.node;
        if (n.role() == role::leader) {
          auto [it, fresh] = leaders_.emplace(std::pair{g, n.term()}, p);
          if (it->second != p)
            throw invariant_violation(describe("group " + std::to_string(g.value) + " has two leaders in term " +
                                               std::to_string(n.term().value)));
        }
        check_committed(g, p, n);
      }
    }
  }

  /// Records the (term, payload) of each entry `n` committed since the last check and compares
  /// it with what any replica of the group committed at that index before.
  void check_committed(group_id g, node_id p, const node_type& n) {
    auto& seen = checked_[{g, p}];
    const in_memory_log& log = n.log();
    const index_t from = std::max(seen.next(), log.first_index());
    for (index_t i = from; i <= n.commit_index() && i <= log.last_index(); i = i.next()) {
      const log_entry& e = log.at(i);
      auto [it, fresh] = committed_[g].emplace(i, e);
      if (!fresh && !(it->second == e))
        throw invariant_violation(describe("group " + std::to_string(g.value) + ": entry " +
                                           std::to_string(i.value) + " committed differently on process " +
                                           std::to_string(p.value)));
    }
    seen = std::max(seen, n.commit_index());
  }

  std::uint64_t seed_;
  asio::io_context context_;
  sim_network network_;
  stepper stepper_{context_, network_};
  options base_;
  std::vector<group_id> groups_;
  std::vector<node_id> ids_;  ///< every process
  std::map<node_id, std::unique_ptr<process>> processes_;
  std::map<std::pair<group_id, term_t>, node_id> leaders_;
  std::map<std::pair<group_id, node_id>, index_t> checked_;
  std::map<group_id, std::map<index_t, log_entry>> committed_;
};

}  // namespace testing
}  // namespace v1
}  // namespace raft
