// Durability: nodes whose storage takes virtual time to flush, and crashes that lose what was
// not flushed. memory_storage's flush completes at once, so it cannot show when a node relies on
// data that is not durable yet. This file runs raft::testing::cluster on a "slow disk" instead.
//
// Rules: a follower acknowledges entries only once they are durable; the leader
// writes its log in parallel with replicating it (thesis §10.2.1) but counts itself toward a
// quorum only for what its storage reports durable; a crash loses exactly what was not flushed.
//
// The randomized test below reads RAFT_SEEDS / RAFT_TEST_SEED like test_random.cpp.
#include <doctest/doctest.h>

#include <deque>
#include <sstream>
#include <variant>

#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include "node_support.hpp"

using namespace node_test;

namespace {

/// A storage whose flush takes `delay` of virtual time and makes durable exactly what was
/// requested before it began. crash() loses everything not flushed; a flush in progress then
/// fails (the disk lost power), so the node stops without acting on it.
class slow_storage {
 public:
  explicit slow_storage(const asio::any_io_executor& ex) : timer_(ex) {}

  std::chrono::nanoseconds delay{0};

  [[nodiscard]] persistent_state load() const { return durable_; }
  void save_hard_state(const hard_state& hs) { durable_.state = hs; }
  void append(std::span<const log_entry> entries) {
    pending_.emplace_back(std::vector<log_entry>(entries.begin(), entries.end()));
  }
  void truncate_after(index_t index) { pending_.emplace_back(index); }

  asio::awaitable<void> flush() {
    if (!powered_) throw std::runtime_error("slow_storage: no power");
    const std::size_t n = pending_.size();
    const std::uint64_t epoch = epoch_;
    ++flushes_;
    if (delay > std::chrono::nanoseconds::zero()) {
      std::error_code ec;
      timer_.expires_after(delay);
      co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (epoch != epoch_) throw std::runtime_error("slow_storage: power lost during a flush");
    make_durable(n);
  }

  /// Power cut: what was not flushed is gone; a flush in progress fails, and so does every
  /// flush until power_on().
  void crash() {
    ++epoch_;
    powered_ = false;
    pending_.clear();
    timer_.cancel();
  }
  void power_on() {
    pending_.clear();
    powered_ = true;
  }

  [[nodiscard]] const std::vector<log_entry>& entries() const noexcept { return durable_.entries; }
  [[nodiscard]] const hard_state& durable_hard_state() const noexcept { return durable_.state; }
  [[nodiscard]] std::size_t flushes() const noexcept { return flushes_; }

 protected:
  void queue_hard_state(const hard_state& hs) { pending_.emplace_back(hs); }

  /// Everything requested so far durable at once (no virtual time passes).
  void flush_at_once() {
    if (!powered_) throw std::runtime_error("slow_storage: no power");
    ++flushes_;
    make_durable(pending_.size());
  }

 private:
  /// The first `n` changes requested become durable.
  void make_durable(std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) {
      auto& op = pending_.front();
      if (auto* entries = std::get_if<std::vector<log_entry>>(&op)) {
        for (auto& e : *entries) durable_.entries.push_back(std::move(e));
      } else if (auto* hs = std::get_if<hard_state>(&op)) {
        durable_.state = *hs;
      } else {
        const std::size_t keep = std::get<index_t>(op).value - durable_.base_index.value;
        if (keep < durable_.entries.size()) durable_.entries.resize(keep);
      }
      pending_.pop_front();
    }
  }

  persistent_state durable_;
  std::deque<std::variant<std::vector<log_entry>, index_t, hard_state>> pending_;
  virtual_timer timer_;
  std::uint64_t epoch_ = 0;
  bool powered_ = true;
  std::size_t flushes_ = 0;
};

/// A slow disk that stages term and vote (raft::storage's optional stage_hard_state): they become
/// durable with the next flush, and a crash before it loses them. The node must then hold every
/// message that depends on them until that flush completes.
class staged_slow_storage : public slow_storage {
 public:
  using slow_storage::slow_storage;
  void stage_hard_state(const hard_state& hs) { queue_hard_state(hs); }
};

/// A storage with the optional `async_flush(handler)` that breaks Asio's rule for it: the
/// handler runs inside the call (everything durable at once). It counts calls of async_flush()
/// made while another is still on the stack: the node must not flush again from inside the
/// completion of the flush it is starting.
class inline_completion_storage : public slow_storage {
 public:
  using slow_storage::slow_storage;

  template <class Handler>
  void async_flush(Handler&& handler) {
    if (in_call_) ++reentered_;
    in_call_ = true;
    std::exception_ptr error;
    try {
      flush_at_once();
    } catch (...) {
      error = std::current_exception();
    }
    std::forward<Handler>(handler)(error);
    in_call_ = false;
  }

  [[nodiscard]] std::size_t reentered() const noexcept { return reentered_; }

 private:
  bool in_call_ = false;
  std::size_t reentered_ = 0;
};

/// The simulated cluster on slow disks: the same drive loop and safety checks as every other
/// simulation test.
using disk_cluster = raft::testing::cluster<kv_state_machine, slow_storage>;
using staged_disk_cluster = raft::testing::cluster<kv_state_machine, staged_slow_storage>;
using inline_completion_cluster = raft::testing::cluster<kv_state_machine, inline_completion_storage>;

/// Checks, for every message as it leaves, that the term and vote it depends on are durable:
/// a vote request (not a pre-vote) only once the candidate's vote for itself in that term is (or
/// a later term), a granted vote only once the vote is (or a later term), and any message only
/// once its term is.
template <class Cluster>
void check_sends_after_durable_hard_state(Cluster& c, std::vector<std::string>& problems) {
  c.network().on_send = [&c, &problems](const message& m) {
    const hard_state& hs = c.storage(m.from).durable_hard_state();
    const term_t t = term_of(m.body);
    const auto* vr = m.body.get_if<vote_request>();
    const auto* vg = m.body.get_if<vote_response>();
    const bool future = (vr && vr->pre_vote) || (vg && vg->pre_vote && vg->granted);  // about a term not ours
    std::string broken;
    if (!future && hs.term < t) broken = "its term is not durable";
    // (A later term durable covers an earlier vote: after a crash the node cannot vote in it again.)
    if (vr && !vr->pre_vote && hs.term <= t && (hs.term != t || hs.voted_for != m.from))
      broken = "its vote for itself is not durable";
    if (vg && vg->granted && !vg->pre_vote && hs.term <= t && (hs.term != t || hs.voted_for != m.to))
      broken = "the vote is not durable";
    if (!broken.empty() && problems.size() < 5)
      problems.push_back("node " + std::to_string(m.from.value) + " sent a message of term " +
                         std::to_string(t.value) + " before " + broken);
  };
}

template <class Cluster>
node_id follower_of(Cluster& c, node_id leader, std::size_t nth) {
  for (node_id id : c.ids())
    if (id != leader && nth-- == 0) return id;
  throw std::logic_error("no such follower");
}

}  // namespace

TEST_CASE("the leader counts itself toward a quorum only for entries its storage reports durable") {
  // Set-up: 3 nodes; the leader's disk takes 100 ms per flush, the followers' are instant; one
  // follower is cut off, so the quorum for a new entry is the leader and the other follower.
  disk_cluster c(3, 7101);
  const node_id l = c.wait_for_leader();
  REQUIRE(settle(c));
  const node_id f = follower_of(c, l, 0), cut = follower_of(c, l, 1);
  c.network().isolate(cut, c.ids());
  c.storage(l).delay = 100ms;
  c.run_for(200ms);  // no flush in progress from here on

  // Action: a proposal. The follower stores and acknowledges it within a few milliseconds.
  const auto start = c.now();
  const index_t index = c.node(l).log().last_index().next();
  const auto p = c.propose(l, kv_state_machine::put("a", "1"));
  REQUIRE(c.run_until([&] { return c.node(f).log().last_index() >= index; }, 10ms));
  c.run_for(20ms);

  // Check: not committed while only the follower has it durably (§10.2.1) ...
  CHECK(c.node(l).status().durable_index < index);
  CHECK(c.node(l).commit_index() < index);
  CHECK_FALSE(p->done());
  // ... and a crash now loses it from the leader: the client was never told it succeeded.
  SUBCASE("the leader crashes before its flush completes") {
    c.crash(l);
    c.run_for(1ms);
    REQUIRE(p->done());
    CHECK(error_of(*p->outcome) == errc::stopped);
    CHECK(c.storage(l).entries().size() < index.value);
  }
  // ... it commits once the leader's flush completes.
  SUBCASE("the leader's flush completes") {
    REQUIRE(c.run_until([&] { return c.node(l).commit_index() >= index; }, 1s));
    CHECK(c.now() - start >= 100ms);
    CHECK(c.run_until([&] { return p->done(); }, 10ms));
    CHECK(p->succeeded());
  }
}

TEST_CASE("a follower acknowledges entries only once its storage reports them durable") {
  // Set-up: 3 nodes; the followers' disks take 100 ms per flush, the leader's is instant.
  std::vector<std::pair<node_id, index_t>> acks;  // success replies: who, match index
  disk_cluster c(3, 7102);
  const node_id l = c.wait_for_leader();
  REQUIRE(settle(c));
  for (node_id id : c.ids())
    if (id != l) c.storage(id).delay = 100ms;
  c.run_for(200ms);
  c.network().on_send = [&](const message& m) {
    if (const auto* r = m.body.get_if<append_response>(); r && r->success) acks.emplace_back(m.from, r->match_index);
  };

  // Action: a proposal; both followers receive it within a few milliseconds.
  const index_t index = c.node(l).log().last_index().next();
  const auto p = c.propose(l, kv_state_machine::put("a", "1"));
  REQUIRE(c.run_until([&] {
    for (node_id id : c.ids())
      if (c.node(id).log().last_index() < index) return false;
    return true;
  }, 10ms));
  c.run_for(20ms);

  // Check: no follower has acknowledged it yet, so it is not committed.
  for (const auto& [from, match] : acks) CHECK(match < index);
  CHECK(c.node(l).commit_index() < index);
  SUBCASE("both followers crash before their flushes complete") {
    // The entry is gone from both; the leader must not have told the client it succeeded.
    for (node_id id : c.ids())
      if (id != l) c.crash(id);
    c.run_for(50ms);
    CHECK_FALSE(p->done());
    for (node_id id : c.ids())
      if (id != l) {
        CHECK(c.storage(id).entries().size() < index.value);
        c.storage(id).delay = 0ms;
        c.restart(id);
      }
    // Back up, the followers get it again from the leader, and it commits.
    REQUIRE(c.run_until([&] { return p->done(); }, 5s));
    CHECK(p->succeeded());
  }
  SUBCASE("the flushes complete") {
    REQUIRE(c.run_until([&] { return p->done(); }, 1s));
    CHECK(p->succeeded());
    bool acked = false;
    for (const auto& [from, match] : acks) acked = acked || match >= index;
    CHECK(acked);
  }
  c.network().on_send = nullptr;
}

/// Random faults on slow disks; what every seed must show (see the test cases below).
template <class Cluster>
void run_disk_chaos(std::uint64_t first, std::uint64_t count, bool check_hard_state_before_sends) {
  MESSAGE("slow-disk simulation: seeds " << first << ".." << first + count - 1
                                         << " (replay one with RAFT_TEST_SEED=<seed> RAFT_SEEDS=1)");
  std::size_t acknowledged_total = 0, flushes_total = 0;
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    CAPTURE(seed);
    std::vector<std::string> problems;
    std::string summary;
    try {
      std::mt19937_64 rng(seed);
      const std::size_t n = rng() % 2 == 0 ? 3 : 5;
      options o;
      o.pre_vote = rng() % 4 != 0;
      o.check_quorum = rng() % 4 != 0;
      Cluster c(n, seed, o);
      if (check_hard_state_before_sends) check_sends_after_durable_hard_state(c, problems);
      std::ostringstream s;
      s << n << " nodes, pre_vote=" << o.pre_vote << " check_quorum=" << o.check_quorum << ", flush delays";
      for (node_id id : c.ids()) {
        c.storage(id).delay = std::chrono::microseconds(rng() % 30000);
        s << " " << c.storage(id).delay.count() / 1000 << "us";
      }
      summary = s.str();
      chaos<Cluster> ch(c, seed ^ 0xD15C);
      for (int k = 0; k < 40; ++k) ch.step();
      ch.heal_all();
      if (!settle(c, 20s)) problems.push_back(c.describe("no settled leader within 20 s after healing"));
      // Liveness: a write commits within a few attempts (a leader may still change at first).
      bool committed = false;
      std::string errors;
      for (int attempt = 0; attempt < 5 && !committed; ++attempt) {
        const auto p = c.propose(c.wait_for_leader(), kv_state_machine::put("final", "1"));
        c.run_until([&] { return p->done(); }, 5s);
        committed = p->succeeded();
        if (!committed) errors += " " + (p->done() ? p->outcome->error().message() : std::string("pending"));
      }
      if (!committed) problems.push_back(c.describe("no write committed after healing:" + errors));
      if (!settle(c, 20s)) problems.push_back(c.describe("did not settle after the final write"));
      for (const auto& put : ch.puts()) {
        if (!put.p->done()) {
          problems.push_back("proposal of " + put.key + " never completed");
          continue;
        }
        if (!put.p->succeeded()) continue;
        ++acknowledged_total;
        for (node_id id : c.ids())
          if (c.state_machine(id).find(put.key) != put.value)
            problems.push_back("acknowledged write " + put.key + " missing on node " + std::to_string(id.value));
      }
      for (node_id id : c.ids()) flushes_total += c.storage(id).flushes();
    } catch (const std::exception& e) {
      problems.push_back(e.what());
    }
    if (!problems.empty()) {
      MESSAGE("seed " << seed << " failed (" << summary << "); replay with RAFT_TEST_SEED=" << seed
                      << " RAFT_SEEDS=1");
      for (const auto& pr : problems) FAIL_CHECK(pr);
    }
  }
  CHECK(acknowledged_total >= count * 5);
  CHECK(flushes_total > 0);
}

TEST_CASE("randomized with slow disks: crashes lose unflushed data, never an acknowledged write") {
  run_disk_chaos<disk_cluster>(env_u64("RAFT_TEST_SEED", 5000), env_u64("RAFT_SEEDS", 300), true);
}

TEST_CASE("randomized with slow disks that stage term and vote: no message leaves before what it depends on is durable") {
  run_disk_chaos<staged_disk_cluster>(env_u64("RAFT_TEST_SEED", 7000), env_u64("RAFT_SEEDS", 300), true);
}

TEST_CASE("a vote granted on a disk that stages term and vote leaves only after the flush that makes it durable") {
  // Set-up: 3 nodes on staged slow disks; one follower's disk takes 100 ms per flush.
  staged_disk_cluster c(3, 7103);
  const node_id l = c.wait_for_leader();
  REQUIRE(settle(c));
  const node_id slow = follower_of(c, l, 0);
  c.storage(slow).delay = 100ms;
  c.run_for(200ms);
  std::vector<std::pair<node_id, raft::testing::virtual_clock::time_point>> grants;
  c.network().on_send = [&](const message& m) {
    if (const auto* v = m.body.get_if<vote_response>(); v && v->granted && !v->pre_vote) grants.emplace_back(m.from, c.now());
  };
  const auto flushes_before = c.storage(slow).flushes();

  // Action: the leader crashes; the others elect. The slow follower's vote (if it votes) is
  // staged, and its reply waits for its 100 ms flush.
  c.crash(l);
  const auto crashed_at = c.now();
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 5s));
  c.network().on_send = nullptr;
  for (const auto& [from, at] : grants) {
    const hard_state& hs = c.storage(from).durable_hard_state();
    CHECK(hs.voted_for != no_node);
    if (from == slow) CHECK(at - crashed_at >= 100ms);  // at least one whole flush after the crash
  }
  CHECK(c.storage(slow).flushes() > flushes_before);
}

TEST_CASE("a storage whose async_flush() completes inside the call is never re-entered, and every write commits") {
  // Set-up: one node (so that its own flush commits) whose storage runs the flush's handler
  // inside async_flush().
  inline_completion_cluster c(1, 7105);
  const node_id l = c.wait_for_leader();
  REQUIRE(settle(c));

  // Action: 4 clients, each proposing its next write from the completion of its last one, so
  // that a flush's completion (which commits and applies, and so completes writes) appends
  // entries to flush again.
  constexpr int clients = 4, writes_each = 10;
  int succeeded = 0, failed = 0;
  std::function<void(int, int)> write = [&](int client, int k) {
    const buffer cmd = kv_state_machine::put("c" + std::to_string(client) + "-" + std::to_string(k), "v");
    c.node(l).async_propose(cmd.bytes(), [&, client, k](result<inline_completion_cluster::result_type> r) {
      ++(r ? succeeded : failed);
      if (k + 1 < writes_each) write(client, k + 1);
    });
  };
  for (int client = 0; client < clients; ++client) write(client, 0);
  REQUIRE(c.run_until([&] { return succeeded + failed == clients * writes_each; }, 5s));

  // Check: every write committed and is durable, and no flush was started from inside
  // another's call.
  CHECK(failed == 0);
  REQUIRE(settle(c));
  for (node_id id : c.ids()) {
    CAPTURE(id);
    CHECK(c.storage(id).reentered() == 0);
    CHECK(c.storage(id).entries().size() >= 2 + clients * writes_each);  // with the bootstrap entry and the no-op
    CHECK_FALSE(c.node(id).failure());
  }
}
