// tests/multi/multi_nemesis.cpp - a nemesis for processes that run many groups.
//
//   multi_nemesis [--seeds N] [--first S] [--require-coverage] [--expect-failure] [--verbose]
//
// Each seed runs raft::testing::multi_cluster: 3 processes, each a replica of 2-8 groups, with
// quiescence on in three runs of four (lease reads in half of the runs, heartbeats aligned in
// half). Four clients put, append and get keys of random groups, through the group's leader or any
// process: a get is either a proposal (ordered in the log) or a read barrier followed by a read of
// the process's state machine (ReadIndex, or the lease). Meanwhile the nemesis acts on whole
// processes, as machines fail: it crashes and restarts them (all their groups at once), pauses and
// resumes them, cuts one off from the others and heals, and moves a group's leadership; it also
// stops the clients for a while, so that the groups go quiet and must wake again. multi_cluster
// checks election safety and the agreement of committed entries per group after every step. At the
// end the faults heal, every group must elect and serve again, its replicas must agree, and the
// clients' history must be linearizable (keys name their group, and each key is checked alone).
//
// Coverage, summed over the seeds: groups that went quiet, and woke again for work (a proposal,
// read or transfer), for a member's message, or because the liveness pings reported their
// leader's process down; processes reported down; barrier reads served. --require-coverage
// fails the run if any of them is zero. Every failure names its seed; `--first S --seeds 1` replays it.
// --expect-failure inverts the verdict, for a mutant of the library (tests/multi/mutants/): the
// run passes only if some seed fails.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "raft/detail/jitter_rng.hpp"
#include "raft/testing/multi_cluster.hpp"

#include "../sim/linearizability.hpp"

namespace {

using namespace std::chrono_literals;
using raft::group_id;
using raft::node_id;
using raft::testing::kv_state_machine;
using cluster_type = raft::testing::multi_cluster<>;
using vduration = raft::testing::virtual_clock::duration;

struct coverage {
  std::uint64_t quiesced = 0;     ///< times a node's group went quiet
  std::uint64_t woken_for_work = 0, woken_by_message = 0, woken_leader_down = 0;  ///< and woke, why
  std::uint64_t peers_down = 0;   ///< liveness reports
  std::uint64_t barrier_reads = 0;
  std::uint64_t crashes = 0, pauses = 0, isolations = 0, transfers = 0, idle_periods = 0;
  coverage& operator+=(const coverage& o) {
    quiesced += o.quiesced, woken_for_work += o.woken_for_work, woken_by_message += o.woken_by_message;
    woken_leader_down += o.woken_leader_down, peers_down += o.peers_down, barrier_reads += o.barrier_reads;
    crashes += o.crashes, pauses += o.pauses, isolations += o.isolations, transfers += o.transfers;
    idle_periods += o.idle_periods;
    return *this;
  }
};

/// One seed's run.
class run {
 public:
  explicit run(std::uint64_t seed, bool verbose) : seed_(seed), verbose_(verbose), rng_(seed) {}

  /// Empty if the run passed, else what failed.
  std::string operator()(coverage& cov) {
    raft::options o;
    o.quiesce = rng_.below(4) != 0;
    o.lease_reads = rng_.below(2) == 0;
    o.align_heartbeats = rng_.below(2) == 0;
    const std::size_t groups = 2 + rng_.below(7);
    cluster_type c(3, groups, seed_, o);
    try {
      if (!c.wait_for_leaders(10s)) return "no leader for every group at the start";
      const auto chaos_end = now() + 15s;
      auto next_fault = now() + vduration(300ms);
      auto idle_until = now();
      while (now() < chaos_end) {
        if (now() >= next_fault) {
          fault(c, idle_until, cov);
          next_fault = now() + vduration(std::chrono::milliseconds(200 + rng_.below(600)));
        }
        if (now() >= idle_until) issue(c);
        c.run_for(5ms);
        collect(c, cov);
      }
      // Heal everything; every group must elect, serve and converge.
      for (node_id p : c.processes()) {
        if (!c.is_up(p)) restart(c, p, cov);
        if (paused_.count(p)) c.resume(p), paused_.erase(p);
      }
      c.network().heal();
      if (!c.wait_for_leaders(10s)) return "after healing, a group has no leader";
      c.run_until([&] { collect(c, cov); return clients_.empty(); }, 10s);
      for (auto& [id, cl] : clients_) finish(cl, std::nullopt);  // never answered: info
      clients_.clear();
      // Every group commits again (a transfer the nemesis started may still refuse or depose
      // the first attempts: retried for up to 10 s).
      for (group_id g : c.groups()) {
        std::string last = "no leader";
        const auto give_up = now() + vduration(10s);
        bool committed = false;
        while (!committed && now() < give_up) {
          const auto l = c.leader(g);
          if (!l) {
            c.run_for(50ms);
            continue;
          }
          auto p = c.propose(*l, g, kv_state_machine::put("final", "x"));
          c.run_until([&] { return p->done(); }, 2s);
          committed = p->succeeded();
          last = p->done() ? (committed ? "" : p->outcome->error().message()) : "no answer in 2 s";
          if (!committed) c.run_for(50ms);
        }
        if (!committed) return "after healing, group " + std::to_string(g.value) + " does not commit (" + last + ")";
      }
      c.run_for(2s);
      for (group_id g : c.groups())
        for (node_id p : c.processes())
          if (c.state_machine(p, g).data() != c.state_machine(node_id{1}, g).data())
            return "group " + std::to_string(g.value) + ": replicas disagree after healing";
      sample_metrics(c, cov);
    } catch (const raft::testing::invariant_violation& e) {
      return e.what();
    } catch (const std::exception& e) {
      return std::string("unexpected exception: ") + e.what();
    }
    const lin::result r = lin::check(history_);
    if (r.outcome == lin::result::verdict::not_linearizable) return "not linearizable: key " + r.key + ": " + r.explanation;
    if (verbose_)
      std::printf("seed %llu: %zu groups, quiesce %s, lease reads %s, %zu operations\n",
                  static_cast<unsigned long long>(seed_), groups, o.quiesce ? "on" : "off",
                  o.lease_reads ? "on" : "off", history_.size());
    return {};
  }

 private:
  struct client {
    lin::kv_op op;
    std::shared_ptr<raft::testing::proposal<std::string>> proposal;
    std::shared_ptr<std::optional<std::optional<std::string>>> read;  ///< barrier read: value or failure
    raft::testing::virtual_clock::time_point deadline;
  };

  static raft::testing::virtual_clock::time_point now() { return raft::testing::virtual_clock::now(); }
  static std::int64_t stamp() { return now().time_since_epoch().count(); }

  /// Each idle client invokes its next operation.
  void issue(cluster_type& c) {
    for (int k = 0; k < 4; ++k) {
      if (clients_.count(k)) continue;
      if (rng_.below(3) != 0) continue;  // think
      const group_id g = c.groups()[rng_.below(c.groups().size())];
      std::optional<node_id> via = rng_.below(2) == 0 ? c.leader(g) : std::optional(node_id{1 + rng_.below(3)});
      if (!via || !c.is_up(*via)) continue;
      const std::string key = "g" + std::to_string(g.value) + "/" + std::string(1, char('a' + rng_.below(3)));
      const auto kind = static_cast<lin::op_kind>(rng_.below(3));
      client cl;
      cl.op = lin::kv_op{"c" + std::to_string(k), stamp(), std::nullopt, kind, key, std::nullopt, lin::op_status::info, 0};
      cl.deadline = now() + vduration(2s);
      const std::string value = std::to_string(++values_);
      if (kind == lin::op_kind::get && rng_.below(2) == 0) {
        // A read barrier, then this process's state machine: linearizable if the barrier is.
        cl.read = std::make_shared<std::optional<std::optional<std::string>>>();
        auto out = cl.read;
        kv_state_machine* sm = &c.state_machine(*via, g);
        c.node(*via, g).async_read_barrier([out, sm, key](raft::result<raft::index_t> r) {
          if (r) *out = std::optional<std::string>(sm->find(key).value_or(""));
          else *out = std::optional<std::string>();  // failed: an info get tells nothing
        });
      } else {
        if (kind != lin::op_kind::get) cl.op.value = value;
        const raft::buffer cmd = kind == lin::op_kind::put      ? kv_state_machine::put(key, value)
                                 : kind == lin::op_kind::append ? kv_state_machine::append(key, value)
                                                                : kv_state_machine::get(key);
        cl.proposal = c.propose(*via, g, cmd);
      }
      clients_.emplace(k, std::move(cl));
    }
  }

  /// Records the operations that completed or timed out.
  void collect(cluster_type& c, coverage& cov) {
    (void)c;
    for (auto it = clients_.begin(); it != clients_.end();) {
      client& cl = it->second;
      bool done = false;
      if (cl.proposal && cl.proposal->done()) {
        const auto& r = *cl.proposal->outcome;
        if (r) {
          cl.op.status = lin::op_status::ok;
          if (cl.op.kind == lin::op_kind::get) cl.op.value = r.value().empty() ? std::nullopt : std::optional(r.value());
        } else {
          cl.op.status = refused(r.error().code) ? lin::op_status::fail : lin::op_status::info;
        }
        done = true;
      } else if (cl.read && cl.read->has_value()) {
        if (**cl.read) {
          cl.op.status = lin::op_status::ok;
          cl.op.value = (**cl.read)->empty() ? std::nullopt : std::optional(**cl.read);
          ++cov.barrier_reads;
        }
        done = true;
      } else if (now() >= cl.deadline) {
        finish(cl, std::nullopt);
        it = clients_.erase(it);
        continue;
      }
      if (done) {
        finish(cl, stamp());
        it = clients_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void finish(client& cl, std::optional<std::int64_t> end) {
    cl.op.end = end;
    if (!end) cl.op.status = lin::op_status::info;
    history_.push_back(cl.op);
  }

  static bool refused(raft::errc e) {
    switch (e) {
      case raft::errc::not_leader:
      case raft::errc::busy:
      case raft::errc::transferring:
      case raft::errc::change_in_progress:
      case raft::errc::invalid_argument:
        return true;
      default:
        return false;
    }
  }

  /// Node metrics and router stats are per incarnation: sampled before a crash and at the end.
  void sample_metrics(cluster_type& c, coverage& cov, std::optional<node_id> only = std::nullopt) {
    for (node_id p : c.processes()) {
      if (!c.is_up(p) || (only && *only != p)) continue;
      cov.peers_down += c.router(p).stats().peers_down;
      for (group_id g : c.groups()) {
        const raft::node_metrics& m = c.node(p, g).metrics();
        cov.quiesced += m.quiesced;
        cov.woken_for_work += m.woken_for_work;
        cov.woken_by_message += m.woken_by_message;
        cov.woken_leader_down += m.woken_leader_down;
      }
    }
  }

  void restart(cluster_type& c, node_id p, coverage&) {
    c.restart(p);
    if (verbose_) std::printf("  restart %llu\n", static_cast<unsigned long long>(p.value));
  }

  void fault(cluster_type& c, raft::testing::virtual_clock::time_point& idle_until, coverage& cov) {
    const auto procs = c.processes();
    const node_id p = procs[rng_.below(procs.size())];
    switch (rng_.below(6)) {
      case 0:  // crash one process (at most one down at a time), or bring the down one back
        if (auto down = std::find_if(procs.begin(), procs.end(), [&](node_id q) { return !c.is_up(q); }); down != procs.end()) {
          restart(c, *down, cov);
        } else if (!paused_.count(p)) {
          sample_metrics(c, cov, p);
          c.crash(p);
          ++cov.crashes;
        }
        break;
      case 1:  // pause one process, or resume the paused one
        if (!paused_.empty()) {
          c.resume(*paused_.begin());
          paused_.clear();
        } else if (c.is_up(p)) {
          c.pause(p);
          paused_.insert(p);
          ++cov.pauses;
        }
        break;
      case 2:  // cut one process off from the others, or heal
        if (isolated_) {
          c.network().heal();
          isolated_ = false;
        } else {
          c.network().isolate(p, procs);
          isolated_ = true;
          ++cov.isolations;
        }
        break;
      case 3: {  // move a group's leadership
        const group_id g = c.groups()[rng_.below(c.groups().size())];
        if (auto l = c.leader(g); l && c.is_up(*l) && !paused_.count(*l)) {
          c.node(*l, g).async_transfer_leadership(p, [](raft::result<node_id>) {});
          ++cov.transfers;
        }
        break;
      }
      default:  // the clients rest: the groups go quiet
        idle_until = now() + vduration(std::chrono::milliseconds(500 + rng_.below(1500)));
        ++cov.idle_periods;
        break;
    }
  }

  std::uint64_t seed_;
  bool verbose_;
  raft::detail::jitter_rng rng_;
  std::map<int, client> clients_;
  std::vector<lin::kv_op> history_;
  std::set<node_id> paused_;
  bool isolated_ = false;
  std::uint64_t values_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t seeds = 20, first = 1;
  bool require_coverage = false, verbose = false, expect_failure = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seeds" && i + 1 < argc) seeds = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--first" && i + 1 < argc) first = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--require-coverage") require_coverage = true;
    else if (a == "--verbose") verbose = true;
    else if (a == "--expect-failure") expect_failure = true;
    else {
      std::fprintf(stderr, "usage: multi_nemesis [--seeds N] [--first S] [--require-coverage] [--expect-failure] [--verbose]\n");
      return 2;
    }
  }
  coverage total;
  std::uint64_t failed = 0;
  for (std::uint64_t s = first; s < first + seeds; ++s) {
    coverage cov;
    const std::string why = run(s, verbose)(cov);
    total += cov;
    if (!why.empty()) {
      ++failed;
      std::printf("seed %llu FAILED: %s\n  replay: multi_nemesis --first %llu --seeds 1 --verbose\n",
                  static_cast<unsigned long long>(s), why.c_str(), static_cast<unsigned long long>(s));
    }
  }
  std::printf("multi_nemesis: seeds %llu..%llu, %llu failed; coverage: %llu quiesced, woken %llu for work, "
              "%llu by a message, %llu with the leader down; %llu peers reported down, "
              "%llu barrier reads, %llu crashes, %llu pauses, %llu isolations, %llu transfers, %llu idle periods\n",
              static_cast<unsigned long long>(first), static_cast<unsigned long long>(first + seeds - 1),
              static_cast<unsigned long long>(failed), static_cast<unsigned long long>(total.quiesced),
              static_cast<unsigned long long>(total.woken_for_work), static_cast<unsigned long long>(total.woken_by_message),
              static_cast<unsigned long long>(total.woken_leader_down), static_cast<unsigned long long>(total.peers_down), static_cast<unsigned long long>(total.barrier_reads),
              static_cast<unsigned long long>(total.crashes), static_cast<unsigned long long>(total.pauses),
              static_cast<unsigned long long>(total.isolations), static_cast<unsigned long long>(total.transfers),
              static_cast<unsigned long long>(total.idle_periods));
  if (require_coverage && (total.quiesced == 0 || total.woken_for_work == 0 || total.woken_by_message == 0 ||
                           total.woken_leader_down == 0 || total.peers_down == 0 || total.barrier_reads == 0)) {
    std::printf("multi_nemesis: coverage missing (quiesced, each way of waking, peers reported down and barrier "
                "reads must all be nonzero)\n");
    return 1;
  }
  if (expect_failure) {
    std::printf("multi_nemesis: %s\n", failed ? "the mutant was caught" : "the mutant was NOT caught");
    return failed ? 0 : 1;
  }
  return failed == 0 ? 0 : 1;
}
