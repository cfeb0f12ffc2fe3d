// tests/fuzz/fuzz_cluster.cpp - libFuzzer harness: a simulated cluster run by a schedule of faults
// that the fuzzer writes, with Raft's safety properties checked after every step.
//
// raft::testing::cluster (3 or 5 nodes, kv_state_machine, memory_storage) checks after every
// step, and throws at the first breach: election safety, leader append-only, log matching,
// leader completeness / state machine safety, nothing applied before it is committed. The input
// is a program of operations, all inside Raft's fault model (messages lost, duplicated, delayed,
// reordered, never forged; nodes crash, losing what they had not flushed, and restart):
//   - let virtual time pass; propose a put/append/get through the leader or any node;
//   - crash a node, restart one; pause one and resume it (when the simulation supports it);
//   - partition the cluster into groups, cut one direction of one link, heal;
//   - set the network's loss, duplication and delay; skew one node's clock (when supported);
//   - replay any message sent earlier, delivered again, late (an old duplicate).
// After the program: heal everything, restart every node, and the cluster must recover: elect a
// leader and commit a new command within 60 s of virtual time, and every replica must then hold
// the same state (same applied index and state-machine hash). Virtual time is deterministic: the
// same input gives the same run, so any failure replays exactly.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "raft/raft.hpp"
#include "raft/testing/cluster.hpp"
#include "raft/testing/kv_state_machine.hpp"

namespace {

using namespace std::chrono_literals;
using raft::node_id;
using raft::testing::kv_state_machine;
using cluster_type = raft::testing::cluster<kv_state_machine>;

const bool tracing = std::getenv("FUZZ_TRACE") != nullptr;

void trace(const cluster_type& c, const std::string& what) {
  if (tracing) std::fprintf(stderr, "%s\n", c.describe(what).c_str());
}

class harness {
 public:
  harness(fuzz::input& in, std::size_t size, std::uint64_t seed, raft::options base)
      : in_(in), c_(size, seed, std::move(base)), ids_(c_.ids()) {
    c_.network().on_send = [this](const raft::message& m) {
      if (replaying_) return;
      if (recent_.size() == 256) recent_.pop_front();
      recent_.push_back(m);
    };
  }

  void run() {
    for (int ops = 0; ops < 300 && !in_.empty(); ++ops) step_once();
    recover();
  }

 private:
  node_id any() { return ids_[in_.below(ids_.size())]; }

  void step_once() {
    auto& net = c_.network();
    switch (in_.below(14)) {
      case 0:
      case 1:
      case 2: {
        const auto ms = 5 * in_.below(100);
        trace(c_, "run " + std::to_string(ms) + "ms");
        c_.run_for(std::chrono::milliseconds(ms));
        break;
      }
      case 3: {  // a command, through the leader (or any node: it may refuse)
        const auto via = in_.flag() ? c_.leader() : std::optional<node_id>(any());
        if (!via || !c_.is_up(*via)) break;
        const std::string key = "k" + std::to_string(in_.below(4));
        const std::string value = "v" + std::to_string(commands_++);
        const auto kind = in_.below(3);
        trace(c_, "propose via " + std::to_string(via->value));
        c_.propose(*via, kind == 0   ? kv_state_machine::put(key, value)
                         : kind == 1 ? kv_state_machine::append(key, value)
                                     : kv_state_machine::get(key));
        break;
      }
      case 4: {
        const node_id n = any();
        trace(c_, "crash " + std::to_string(n.value));
        resume(n);
        c_.crash(n);
        break;
      }
      case 5: {
        const node_id n = any();
        trace(c_, "restart " + std::to_string(n.value));
        c_.restart(n);
        break;
      }
      case 6: {  // split into groups (a node in no group is cut from everyone)
        std::vector<std::vector<node_id>> groups(3);
        for (node_id n : ids_) {
          const auto g = in_.below(4);
          if (g < 3) groups[g].push_back(n);
        }
        trace(c_, "partition");
        net.heal();
        net.partition(groups, ids_);
        break;
      }
      case 7: {
        const node_id a = any(), b = any();
        trace(c_, "cut " + std::to_string(a.value) + "->" + std::to_string(b.value));
        if (a != b) net.cut(a, b);
        break;
      }
      case 8:
        trace(c_, "heal");
        net.heal();
        break;
      case 9: {
        net.faults.drop = 0.1 * double(in_.below(5));
        net.faults.duplicate = 0.1 * double(in_.below(4));
        const std::chrono::microseconds delays[] = {100us, 500us, 1500us, 5ms, 20ms, 60ms};
        net.faults.min_delay = delays[in_.below(3)];
        net.faults.max_delay = delays[in_.below(6)];
        trace(c_, "faults: drop " + std::to_string(net.faults.drop) + " dup " + std::to_string(net.faults.duplicate));
        break;
      }
      case 10:
      case 11: {  // an old message, delivered again
        if (recent_.empty()) break;
        const int count = 1 + int(in_.below(4));
        for (int k = 0; k < count; ++k) {
          replaying_ = true;
          net.inject(recent_[recent_.size() - 1 - in_.below(recent_.size())]);
          replaying_ = false;
        }
        break;
      }
      case 12: {  // a process stopped (SIGSTOP) and continued later
        const node_id n = any();
        if (in_.flag())
          pause(n);
        else
          resume(n);
        break;
      }
      case 13: {  // clock skew
        const double rates[] = {1.0, 0.5, 0.8, 1.25, 2.0, 4.0};
        const node_id n = any();
        set_clock_rate(n, rates[in_.below(6)]);
        break;
      }
    }
  }

  // Pause and clock skew are used where the simulation offers them (checked at compile time, in
  // templates, so the harness compiles against a simulation without them).
  template <class Net = raft::testing::sim_network, class Time = raft::testing::timeline>
  void pause(node_id n) {
    Net& net = c_.network();
    Time& t = Time::current();
    if constexpr (requires { net.pause(n); t.pause(n.value); }) {
      trace(c_, "pause " + std::to_string(n.value));
      net.pause(n);
      t.pause(n.value);
    }
  }

  template <class Net = raft::testing::sim_network, class Time = raft::testing::timeline>
  void resume(node_id n) {
    Net& net = c_.network();
    Time& t = Time::current();
    if constexpr (requires { net.resume(n); t.resume(n.value); }) {
      net.resume(n);
      t.resume(n.value);
    }
  }

  template <class Time = raft::testing::timeline>
  void set_clock_rate(node_id n, double rate) {
    Time& t = Time::current();
    if constexpr (requires { t.set_rate(n.value, rate); }) {
      trace(c_, "clock rate of " + std::to_string(n.value) + ": " + std::to_string(rate));
      t.set_rate(n.value, rate);
    }
  }

  /// After the faults: the cluster must elect a leader, commit, and converge.
  void recover() {
    auto& net = c_.network();
    net.heal();
    net.faults = raft::testing::network_faults{};
    for (node_id n : ids_) {
      resume(n);
      set_clock_rate(n, 1.0);
      c_.restart(n);
    }
    trace(c_, "recovering");
    const auto deadline = c_.now() + 60s;
    bool committed = false;
    while (!committed && c_.now() < deadline) {
      if (!c_.run_until([&] { return c_.leader().has_value(); }, deadline - c_.now())) break;
      auto p = c_.propose(*c_.leader(), kv_state_machine::put("final", "v"));
      c_.run_until([&] { return p->done(); }, std::min<cluster_type::duration>(10s, deadline - c_.now()));
      committed = p->succeeded();
    }
    FUZZ_CHECK(committed, c_.describe("no command committed within 60 s after every fault was healed"));
    // Converged: every replica has applied the highest commit index any of them knows.
    const bool converged = c_.run_until(
        [&] {
          raft::index_t top{0};
          for (node_id n : ids_) top = std::max(top, c_.node(n).commit_index());
          for (node_id n : ids_)
            if (c_.node(n).applied_index() != top) return false;
          return true;
        },
        30s);
    FUZZ_CHECK(converged, c_.describe("the replicas did not converge within 30 s"));
    const auto& first = c_.state_machine(ids_.front());
    for (node_id n : ids_) {
      const auto& sm = c_.state_machine(n);
      FUZZ_CHECK(sm.last_applied() == first.last_applied() && sm.hash() == first.hash() && sm.data() == first.data(),
                 c_.describe("replica " + std::to_string(n.value) + " differs after convergence"));
    }
  }

  fuzz::input& in_;
  cluster_type c_;
  std::vector<node_id> ids_;
  std::deque<raft::message> recent_;
  bool replaying_ = false;
  std::uint64_t commands_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::input in(data, size);
  const std::uint8_t shape = in.u8();
  raft::options base;
  base.pre_vote = (shape & 2) == 0;
  base.check_quorum = (shape & 4) == 0;
  base.max_entries_per_message = 1 + (shape >> 5);
  base.max_inflight_messages = 1 + ((shape >> 3) & 3);
  try {
    harness h(in, (shape & 1) ? 5 : 3, in.u64(), base);
    h.run();
  } catch (const raft::testing::invariant_violation& e) {
    fuzz::fail(std::string("invariant violated: ") + e.what());
  }
  return 0;
}
