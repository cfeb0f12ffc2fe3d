// raft/testing/cluster.hpp - a deterministic simulated Raft cluster.
//
// N nodes on one single-threaded io_context, the virtual clock and a simulated network, each
// with its own storage (memory_storage by default; any storage with a crash() that loses what
// was not flushed, such as a test's slow disk). The cluster runs the io_context until nothing is ready, then jumps the
// clock to the next timer or message delivery, and repeats: the same seed gives the same run.
// After every step (every virtual instant; log matching every 64th) it checks the safety
// properties of the dissertation's Figure 3.2 and throws
// raft::testing::invariant_violation, naming the seed, at the first breach:
//   - election safety: at most one leader per term;
//   - leader append-only: a leader never overwrites or deletes entries of its own log;
//   - log matching: two logs with an entry of the same index and term agree up to it;
//   - leader completeness / state machine safety: every committed entry is the same on every
//     node that has it, never changes, and every new leader holds all those committed before
//     its term;
//   - nothing is applied before it is committed.
// Each check can be switched off (cluster::checks(), a cluster_checks), so that a test's own
// oracle, or a test of one, runs alone.
// Users can run their own state machine in it: cluster<my_state_machine>.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "raft/detail/asio_check.hpp"

#include "raft/node.hpp"
#include "raft/storage/memory.hpp"
#include "raft/testing/kv_state_machine.hpp"
#include "raft/testing/network.hpp"
#include "raft/testing/stepper.hpp"
#include "raft/testing/virtual_time.hpp"

namespace raft {
inline namespace v1 {
namespace testing {

/// A safety property was broken. what() names the property, the nodes and the seed.
class invariant_violation : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// The outcome of a proposal made through the cluster, filled in when it completes.
template <class Result>
struct proposal {
  std::optional<raft::result<Result>> outcome;
  [[nodiscard]] bool done() const noexcept { return outcome.has_value(); }
  [[nodiscard]] bool succeeded() const noexcept { return outcome && outcome->has_value(); }
};

/// Which safety checks a cluster makes after every step: all of them unless switched off. A
/// switched-off check reports nothing, but the records other checks and committed() rely on
/// (entries known committed, leaders seen per term) are kept all the same.
struct cluster_checks {
  bool applied_within_commit = true;  ///< applied index <= commit index, on every node
  bool commit_within_log = true;      ///< commit index <= last log index, on every node
  bool election_safety = true;        ///< at most one leader per term
  bool leader_append_only = true;     ///< a leader never overwrites or deletes its own entries
  bool leader_completeness = true;    ///< a new leader holds every entry known committed
  bool state_machine_safety = true;   ///< a committed entry is the same everywhere and forever
  bool log_matching = true;           ///< same index and term: same logs up to it (every 64th step)

  /// Every check off (then switch on the ones wanted).
  [[nodiscard]] static constexpr cluster_checks none() noexcept {
    return {false, false, false, false, false, false, false};
  }
  friend bool operator==(const cluster_checks&, const cluster_checks&) = default;
};

/// A storage the simulation can crash: `crash()` loses whatever was not flushed. If it also has
/// `power_on()`, the cluster calls it before restarting the node (a storage may refuse all work
/// between a crash and then, so a node being torn down cannot write after its "power cut").
template <class S>
concept crashable_storage = storage<S> && requires(S& s) { s.crash(); };

template <state_machine StateMachine = kv_state_machine, crashable_storage Storage = memory_storage>
class cluster {
 public:
  using node_type = raft::node<StateMachine, Storage, sim_transport, virtual_timer>;
  using storage_type = Storage;
  using result_type = typename node_type::result_type;
  using duration = virtual_clock::duration;

  /// `size` founding voters with ids 1..size. `base` is the template for every node's options;
  /// id, bootstrap and seed are filled in per node. `seed` decides every random choice.
  /// `initial[i]`, if given, is what node i+1's storage holds before it first starts (for
  /// tests that set up logs by hand, like Figure 3.6 (the paper's Figure 7)); founders with no initial
  /// state bootstrap.
  explicit cluster(std::size_t size, std::uint64_t seed, options base = {},
                   std::vector<persistent_state> initial = {})
      : seed_(seed), base_(std::move(base)), network_(seed) {
    timeline::current().reset();
    configuration founders;
    for (std::size_t i = 1; i <= size; ++i) founders.voters.push_back(node_id{i});
    for (node_id id : founders.voters) {
      auto m = std::make_unique<member>();
      m->id = id;
      m->storage = make_storage(id.value <= initial.size() ? std::move(initial[id.value - 1])
                                                           : persistent_state{});
      members_.emplace(id, std::move(m));
    }
    for (auto& [id, m] : members_) {
      m->opts = base_;
      m->opts.id = id;
      m->opts.bootstrap = founders;
      m->opts.seed = seed_ * 1000003 + id.value;
      boot(*m);
    }
  }

  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;

  ~cluster() {
    for (auto& [id, m] : members_)
      if (m->node) shut_down(*m);
    timeline::current().reset();
  }

  [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }
  [[nodiscard]] std::vector<node_id> ids() const {
    std::vector<node_id> out;
    for (auto& [id, m] : members_) out.push_back(id);
    return out;
  }
  [[nodiscard]] sim_network& network() noexcept { return network_; }
  [[nodiscard]] asio::io_context& context() noexcept { return context_; }
  [[nodiscard]] bool is_up(node_id id) const { return get(id).node != nullptr; }
  [[nodiscard]] node_type& node(node_id id) {
    auto& m = get(id);
    if (!m.node) throw std::logic_error(describe("node " + std::to_string(id.value) + " is down"));
    return *m.node;
  }
  [[nodiscard]] StateMachine& state_machine(node_id id) { return *get(id).sm; }
  [[nodiscard]] Storage& storage(node_id id) { return *get(id).storage; }
  [[nodiscard]] virtual_clock::time_point now() const noexcept { return virtual_clock::now(); }

  /// The safety checks made after every step (all on by default), to switch some off:
  /// `c.checks().log_matching = false;` or `c.checks() = cluster_checks::none();`. A change
  /// applies from the next step on.
  [[nodiscard]] cluster_checks& checks() noexcept { return checks_; }
  [[nodiscard]] const cluster_checks& checks() const noexcept { return checks_; }

  /// Stops node `id` the hard way: what its storage had not made durable is lost, and so are
  /// the messages on their way to it.
  void crash(node_id id) {
    auto& m = get(id);
    if (!m.node) return;
    m.storage->crash();  // first, so nothing the node does while stopping becomes durable
    shut_down(m);
    network_.drop_in_flight_to(id);
    m.checked_commit = index_t{0};
  }

  /// Starts a crashed node again from what its storage kept, with a fresh state machine.
  void restart(node_id id) {
    auto& m = get(id);
    if (m.node) return;
    boot(m);
  }

  /// Adds node `id` with empty storage and no bootstrap configuration: it starts as a follower
  /// that belongs to no configuration, and joins once a leader adds it (node::async_add_learner).
  void add_node(node_id id) {
    if (members_.contains(id)) throw std::logic_error("cluster::add_node: node " + std::to_string(id.value) + " exists");
    auto m = std::make_unique<member>();
    m->id = id;
    m->storage = make_storage(persistent_state{});
    m->opts = base_;
    m->opts.id = id;
    m->opts.bootstrap.reset();
    m->opts.seed = seed_ * 1000003 + id.value;
    boot(*m);
    members_.emplace(id, std::move(m));
  }

  /// Runs the simulation for `d` of virtual time.
  void run_for(duration d) {
    run_until([] { return false; }, d);
  }

  /// Runs until `pred()` holds (checked after every step) or `limit` of virtual time has passed.
  /// Returns whether `pred()` held.
  template <class Predicate>
  bool run_until(Predicate pred, duration limit) {
    return stepper_.run_until(pred, limit, [this] { check_invariants(); });
  }

  /// The leader with the highest term among the nodes that are up, if any.
  [[nodiscard]] std::optional<node_id> leader() const {
    std::optional<node_id> best;
    term_t best_term{0};
    for (auto& [id, m] : members_)
      if (m->node && m->node->role() == role::leader && m->node->term() >= best_term) {
        best = id;
        best_term = m->node->term();
      }
    return best;
  }

  /// Runs until some node leads and returns it; throws if none does within `limit`.
  node_id wait_for_leader(duration limit = std::chrono::seconds(10)) {
    if (!run_until([&] { return leader().has_value(); }, limit))
      throw std::runtime_error(describe("no leader elected within the limit"));
    return *leader();
  }

  /// Proposes `command` through node `via`; the returned proposal fills in when it completes.
  std::shared_ptr<proposal<result_type>> propose(node_id via, const buffer& command) {
    auto p = std::make_shared<proposal<result_type>>();
    node(via).async_propose(command.bytes(), [p](result<result_type> r) { p->outcome = std::move(r); });
    return p;
  }

  /// Proposes through the current leader (electing one first if needed) and runs until the
  /// proposal completes or `limit` passes.
  std::shared_ptr<proposal<result_type>> propose_and_wait(const buffer& command,
                                                          duration limit = std::chrono::seconds(10)) {
    auto p = propose(wait_for_leader(limit), command);
    run_until([&] { return p->done(); }, limit);
    return p;
  }

  /// Runs until every node that is up has applied everything the leader committed.
  bool wait_until_converged(duration limit = std::chrono::seconds(10)) {
    return run_until(
        [&] {
          auto l = leader();
          if (!l) return false;
          const index_t c = members_.at(*l)->node->commit_index();
          for (auto& [id, m] : members_)
            if (m->node && m->node->applied_index() < c) return false;
          return true;
        },
        limit);
  }

  /// Highest commit index reported by any node so far.
  [[nodiscard]] index_t committed() const noexcept { return index_t{committed_.size()}; }

  /// The entry committed at `i` (as the first node to commit it held it), or null if `i` is
  /// past committed(). For oracles that need the committed log after nodes compacted theirs.
  [[nodiscard]] const log_entry* committed_entry(index_t i) const noexcept {
    return i.value >= 1 && i.value <= committed_.size() ? &committed_[i.value - 1] : nullptr;
  }

  /// "seed N: <what>" plus one line per node; for failure messages.
  [[nodiscard]] std::string describe(const std::string& what) const {
    std::ostringstream os;
    os << "[seed " << seed_ << ", t=" << now().time_since_epoch().count() / 1000
       << "us] " << what;
    for (auto& [id, m] : members_) {
      os << "\n  node " << id << ": ";
      if (!m->node) {
        os << "down";
        continue;
      }
      auto s = m->node->status();
      os << to_string(s.role) << " term " << s.term << " leader " << s.leader << " last "
         << s.last_log_index << " commit " << s.commit_index << " applied " << s.applied_index;
      auto set = [&](const char* name, const std::vector<node_id>& ids) {
        if (ids.empty()) return;
        os << ' ' << name << " {";
        for (std::size_t k = 0; k < ids.size(); ++k) os << (k ? "," : "") << ids[k];
        os << '}';
      };
      set("voters", s.config.voters);
      set("outgoing", s.config.outgoing);
      set("learners", s.config.learners);
    }
    return os.str();
  }

 private:
  struct member {
    node_id id;
    options opts;
    std::unique_ptr<Storage> storage;  ///< outlives the node: it is the node's disk
    std::unique_ptr<StateMachine> sm;
    std::unique_ptr<sim_transport> transport;
    std::unique_ptr<node_type> node;
    index_t checked_commit{0};  ///< committed prefix already compared with committed_
    term_t leader_term{0};      ///< term in which it was last seen leading
    index_t leader_last{0};     ///< its last index then
    term_t leader_last_term{0};
  };

  member& get(node_id id) {
    auto it = members_.find(id);
    if (it == members_.end()) throw std::out_of_range("no node " + std::to_string(id.value));
    return *it->second;
  }
  const member& get(node_id id) const { return const_cast<cluster*>(this)->get(id); }

  void boot(member& m) {
    m.sm = std::make_unique<StateMachine>();
    m.transport = std::make_unique<sim_transport>(network_, m.id, context_.get_executor());
    if constexpr (requires { m.storage->power_on(); }) m.storage->power_on();
    const timeline::owner_scope timers_of(m.id.value);  // its timers are its own (pause, clock skew)
    m.node = std::make_unique<node_type>(context_.get_executor(), m.opts, *m.sm, *m.storage, *m.transport);
    m.node->start();
    m.leader_term = term_t{0};
  }

  /// A storage starting with `initial`: built from it where the storage allows (memory_storage),
  /// else from the executor or by default (then `initial` must be empty).
  std::unique_ptr<Storage> make_storage(persistent_state initial) {
    if constexpr (std::is_constructible_v<Storage, persistent_state>) {
      return std::make_unique<Storage>(std::move(initial));
    } else {
      if (!initial.entries.empty() || initial.state.term != term_t{0})
        throw std::logic_error("cluster: this storage type cannot start from an initial state");
      if constexpr (std::is_constructible_v<Storage, const asio::any_io_executor&>)
        return std::make_unique<Storage>(context_.get_executor());
      else
        return std::make_unique<Storage>();
    }
  }

  void shut_down(member& m) {
    bool stopped = false;
    asio::co_spawn(context_, m.node->async_stop(), [&](std::exception_ptr) { stopped = true; });
    while (!stopped) {
      context_.restart();
      if (context_.poll() != 0 || stopped) continue;
      // Stopping may wait for a flush that takes virtual time: let time pass.
      const auto next = next_event();
      if (!next) throw std::logic_error(describe("node " + std::to_string(m.id.value) + " does not stop"));
      advance(*next);
    }
    m.node.reset();
    m.transport.reset();
  }

  [[nodiscard]] std::optional<virtual_clock::time_point> next_event() const { return stepper_.next_event(); }
  void advance(virtual_clock::time_point t) { stepper_.advance(t); }

  void violation(const std::string& what) const { throw invariant_violation(describe(what)); }

  void check_invariants() {
    for (auto& [id, m] : members_) {
      if (!m->node) continue;
      const node_type& n = *m->node;
      const in_memory_log& log = n.log();
      if (checks_.applied_within_commit && n.applied_index() > n.commit_index())
        violation("node " + std::to_string(id.value) + " applied past its commit index");
      if (checks_.commit_within_log && n.commit_index() > log.last_index())
        violation("node " + std::to_string(id.value) + " committed past its log");
      // Election safety.
      if (n.role() == role::leader) {
        auto [it, fresh] = leaders_.emplace(n.term(), id);
        if (checks_.election_safety && it->second != id)
          violation("two leaders in term " + std::to_string(n.term().value) + ": nodes " +
                    std::to_string(it->second.value) + " and " + std::to_string(id.value));
        if (m->leader_term == n.term()) {
          // Leader append-only.
          // (An entry compacted away since the last step was committed and applied: not removed.)
          if (checks_.leader_append_only &&
              (log.last_index() < m->leader_last ||
               (m->leader_last >= log.base_index() && log.term_at(m->leader_last) != m->leader_last_term)))
            violation("leader " + std::to_string(id.value) + " removed or changed its own entries");
        } else if (checks_.leader_completeness) {
          // Leader completeness: a new leader of term T holds every entry committed before T.
          for (index_t i{1}; i <= committed(); i = i.next())
            if (i >= log.first_index() && committed_in_[i.value - 1] < n.term() &&
                log.term_at(i) != committed_[i.value - 1].term)
              violation("leader " + std::to_string(id.value) + " of term " +
                        std::to_string(n.term().value) + " lacks committed entry " +
                        std::to_string(i.value));
        }
        m->leader_term = n.term();
        m->leader_last = log.last_index();
        m->leader_last_term = log.last_term();
        (void)fresh;
      }
      // State machine safety: a committed entry is the same everywhere and forever. The first
      // node to commit an index records its entry (committed_), checked or not.
      // (Up to the last index: with commit_within_log off, the commit index may lie past it.)
      const index_t from = std::max(m->checked_commit.next(), log.first_index());
      const index_t top = std::min(n.commit_index(), log.last_index());
      for (index_t i = from; i <= top; i = i.next()) {
        const log_entry& e = log.at(i);
        if (i.value <= committed_.size()) {
          if (!checks_.state_machine_safety) continue;
          const log_entry& c = committed_[i.value - 1];
          if (c.term != e.term || c.kind != e.kind || !(c.data == e.data))
            violation("committed entry " + std::to_string(i.value) + " differs on node " +
                      std::to_string(id.value));
        } else if (i.value == committed_.size() + 1) {
          committed_.push_back(e);
          committed_in_.push_back(n.term());
        }
      }
      m->checked_commit = std::max(m->checked_commit, top);
    }
    if (++steps_ % 64 == 0 && checks_.log_matching) check_log_matching();
  }

  /// Log matching: if two logs hold an entry with the same index and term, they agree up to it.
  void check_log_matching() const {
    for (auto& [a, ma] : members_) {
      for (auto& [b, mb] : members_) {
        if (a >= b || !ma->node || !mb->node) continue;
        const in_memory_log& la = ma->node->log();
        const in_memory_log& lb = mb->node->log();
        const index_t lo = std::max(la.first_index(), lb.first_index());
        index_t top{0};
        for (index_t i = std::min(la.last_index(), lb.last_index()); i >= lo && i > index_t{0}; i = i.prev())
          if (la.term_at(i) == lb.term_at(i)) {
            top = i;
            break;
          }
        for (index_t i = lo; i <= top; i = i.next())
          if (!(la.at(i) == lb.at(i)))
            violation("log matching broken between nodes " + std::to_string(a.value) + " and " +
                      std::to_string(b.value) + " at index " + std::to_string(i.value));
      }
    }
  }

  std::uint64_t seed_;
  options base_;
  asio::io_context context_{1};
  sim_network network_;
  stepper stepper_{context_, network_};
  std::map<node_id, std::unique_ptr<member>> members_;
  std::map<term_t, node_id> leaders_;
  std::vector<log_entry> committed_;  ///< every entry known committed, by index - 1
  /// The term of the node that first reported each entry committed: at or after the term in
  /// which it committed (a node learns of a commit from its own term's leader). Leader
  /// completeness asks a leader of term T only for entries committed before T: a candidate
  /// may win term T with a vote granted before its voter moved on to T+1, whose leader has
  /// committed more since.
  std::vector<term_t> committed_in_;
  std::uint64_t steps_ = 0;
  cluster_checks checks_;
};

}  // namespace testing
}  // namespace v1
}  // namespace raft
