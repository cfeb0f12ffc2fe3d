// Tests of the simulation's fault plumbing (pause, clock skew in raft/testing/) and of the
// nemesis driver (tests/sim/sim.hpp): a seed replays exactly, histories are really checked.
//
//   RAFT_TEST_SEED=S   the seed the determinism tests use (default 7)
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include "sim.hpp"

using namespace sim;

namespace {

std::uint64_t test_seed() {
  const char* env = std::getenv("RAFT_TEST_SEED");
  return env && *env ? std::strtoull(env, nullptr, 10) : 7;
}

/// Counts completed waits of one timer on a bare timeline; all probes share one io_context.
struct timer_probe {
  static asio::io_context& ctx() {
    static asio::io_context c;
    return c;
  }
  int fired = 0, aborted = 0;
  std::unique_ptr<virtual_timer> t;
  explicit timer_probe(std::uint64_t owner) {
    const timeline::owner_scope scope(owner);
    t = std::make_unique<virtual_timer>(ctx().get_executor());
  }
  void wait_for(vduration d) {
    t->expires_after(d);
    t->async_wait([this](std::error_code ec) { ec ? ++aborted : ++fired; });
  }
  static void run_to(vduration at) {
    timeline::current().advance_to(virtual_clock::time_point(at));
    ctx().restart();
    ctx().poll();
  }
};

/// Doctors `h` so that it cannot be linearized, whatever the seed: takes an ok get (the last
/// one that qualifies, so usually a final read) and removes from the value it read an append
/// that was acknowledged before the get started. Values are unique: a value read is an optional
/// put "pK.N" followed by appends "aK.N,". The append dropped, `a`, is one whose put-prefix `p`
/// (if any) was acknowledged before `a` started, so every linearization orders p, a, get; a put
/// between a and the get would make the get's value start with that put's value, not p's (or
/// with a put at all, when there is no p). So a is in what the get reads, and the doctored value
/// cannot be. Returns the key doctored, or "" if no get qualifies.
std::string drop_acknowledged_append(std::vector<lin::kv_op>& h) {
  auto find = [&](lin::op_kind kind, const std::string& key, const std::string& value) -> const lin::kv_op* {
    for (const auto& op : h)
      if (op.kind == kind && op.key == key && op.value == value) return &op;
    return nullptr;
  };
  for (auto r = h.rbegin(); r != h.rend(); ++r) {
    if (r->kind != lin::op_kind::get || r->status != lin::op_status::ok || !r->value) continue;
    const std::string& read = *r->value;
    const std::size_t first = read.find('a');
    if (first == std::string::npos) continue;  // no append in it
    const std::string base = read.substr(0, first);
    const lin::kv_op* put = base.empty() ? nullptr : find(lin::op_kind::put, r->key, base);
    if (!base.empty() && (!put || put->status != lin::op_status::ok || !put->end)) continue;
    for (std::size_t at = first; at < read.size();) {
      const std::size_t comma = read.find(',', at);
      REQUIRE(comma != std::string::npos);
      const std::string token = read.substr(at, comma + 1 - at);
      const lin::kv_op* a = find(lin::op_kind::append, r->key, token);
      if (a && a->status == lin::op_status::ok && a->end && *a->end < r->start && (!put || *put->end < a->start)) {
        r->value = read.substr(0, at) + read.substr(comma + 1);
        return r->key;
      }
      at = comma + 1;
    }
  }
  return {};
}

}  // namespace

TEST_CASE("timeline: a paused owner's timers wait for it to resume") {
  timeline::current().reset();
  {
    timer_probe a(1), b(2);
    CHECK(a.t->owner() == 1);
    a.wait_for(10ms);
    b.wait_for(10ms);
    timeline::current().pause(1);
    timer_probe::run_to(20ms);
    CHECK(a.fired == 0);  // held
    CHECK(b.fired == 1);  // not paused
    CHECK(timeline::current().next_deadline() == std::nullopt);  // held waits are not due
    a.wait_for(5ms);  // set while paused: held as well (and the old wait cancelled)
    timer_probe::run_to(20ms);
    CHECK(a.aborted == 1);
    timeline::current().resume(1);
    timer_probe::run_to(21ms);
    CHECK(a.fired == 0);  // due at 25 ms
    timer_probe::run_to(25ms);
    CHECK(a.fired == 1);
    // Cancelling a held wait completes it.
    timeline::current().pause(1);
    a.wait_for(1ms);
    a.t->cancel();
    timer_probe::run_to(30ms);
    CHECK(a.aborted == 2);
    timeline::current().resume(1);
    // A wait overdue when its owner resumes fires at the resume.
    a.wait_for(1ms);
    timeline::current().pause(1);
    timer_probe::run_to(40ms);
    CHECK(a.fired == 1);
    timeline::current().resume(1);
    CHECK(timeline::current().next_deadline() == virtual_clock::time_point(40ms));
    timer_probe::run_to(40ms);
    CHECK(a.fired == 2);
  }
  timeline::current().reset();
}

TEST_CASE("timeline: clock skew stretches an owner's waits") {
  timeline::current().reset();
  {
    timer_probe slow(1), fast(2), nobody(0);
    timeline::current().set_rate(1, 3.0);
    timeline::current().set_rate(2, 0.5);
    timeline::current().set_rate(0, 0.5);  // owner 0 is never skewed
    slow.wait_for(10ms);
    fast.wait_for(10ms);
    nobody.wait_for(10ms);
    timer_probe::run_to(5ms);
    CHECK(fast.fired == 1);
    CHECK(slow.fired == 0);
    timer_probe::run_to(10ms);
    CHECK(nobody.fired == 1);
    CHECK(slow.fired == 0);
    timer_probe::run_to(30ms);
    CHECK(slow.fired == 1);
    timeline::current().set_rate(1, 1.0);
    CHECK(timeline::current().rate(1) == 1.0);
  }
  timeline::current().reset();
}

TEST_CASE("network: messages to and from a paused node are held, then delivered") {
  timeline::current().reset();
  {
    cluster<> c(3, 5);
    const node_id l = c.wait_for_leader();
    c.run_for(200ms);
    const term_t t = c.node(l).term();
    std::uint64_t from_leader = 0;
    c.network().on_route = [&](const message& m, const char* fate, std::chrono::nanoseconds) {
      if (m.from == l && std::string(fate) == "held") ++from_leader;
    };
    // Pause the leader: the others elect a new one; its own timers and messages wait.
    c.network().pause(l);
    timeline::current().pause(l.value);
    REQUIRE(c.run_until([&] { auto n = c.leader(); return n && *n != l && c.node(*n).term() > t; }, 5s));
    CHECK(c.node(l).role() == role::leader);  // it does not know yet
    CHECK(c.network().held() > 0);
    // Resumed, it hears of the new term and steps down; what it sent while paused goes out.
    c.network().resume(l);
    timeline::current().resume(l.value);
    CHECK(c.network().held() == 0);
    REQUIRE(c.run_until([&] { return c.node(l).role() != role::leader; }, 2s));
    CHECK(c.propose_and_wait(kv::put("x", "1"))->succeeded());
    CHECK(c.wait_until_converged());
    CHECK(c.state_machine(l).find("x") == std::optional<std::string>("1"));
    c.network().on_route = nullptr;
    // A crash drops what was held for the node.
    const node_id f = c.ids()[0] == *c.leader() ? c.ids()[1] : c.ids()[0];
    c.network().pause(f);
    c.run_for(300ms);
    CHECK(c.network().held() > 0);
    c.network().resume(f);
    c.network().pause(f);
    c.run_for(100ms);
    CHECK(c.network().held() > 0);  // the leader's heartbeats to it
    c.crash(f);
    CHECK(c.network().held() == 0);  // lost with it
    c.network().resume(f);
    c.restart(f);
    CHECK(c.wait_until_converged());
  }
}

TEST_CASE("sim: one seed passes, and its history is really checked") {
  const std::uint64_t seed = test_seed();
  CAPTURE(seed);
  const outcome o = run_seed(seed);
  for (const auto& p : o.problems) FAIL_CHECK(p);
  REQUIRE(o.passed());
  CHECK(o.ops_ok > 20);
  CHECK(o.lin.ok());
  CHECK(!o.schedule.empty());
  // Reads saw values, not just absent keys.
  std::size_t seen = 0, gets = 0;
  for (const auto& op : o.history)
    if (op.kind == lin::op_kind::get && op.status == lin::op_status::ok) ++gets, seen += op.value ? 1 : 0;
  CHECK(gets > 5);
  CHECK(seen > 0);
  // Corrupt the history: a read that saw a value nobody wrote, then a read that misses an
  // acknowledged append it must see. The checker must say "not linearizable", for that key.
  auto h = o.history;
  std::string key;
  for (auto& op : h)
    if (op.kind == lin::op_kind::get && op.status == lin::op_status::ok && op.value) {
      op.value = *op.value + "x";
      key = op.key;
      break;
    }
  REQUIRE(!key.empty());
  lin::result r = lin::check(h);
  CHECK(r.outcome == lin::result::verdict::not_linearizable);
  CHECK(r.key == key);
  h = o.history;
  key = drop_acknowledged_append(h);
  REQUIRE(!key.empty());
  r = lin::check(h);
  CHECK(r.outcome == lin::result::verdict::not_linearizable);
  CHECK(r.key == key);
}

TEST_CASE("sim: the same seed gives the same trace hash; tracing changes nothing") {
  const std::uint64_t seed = test_seed();
  CAPTURE(seed);
  const outcome a = run_seed(seed);
  const outcome b = run_seed(seed);
  CHECK(a.trace_hash == b.trace_hash);
  CHECK(a.history.size() == b.history.size());
  CHECK(a.schedule == b.schedule);
  run_options traced;
  traced.trace = true;
  traced.verbose = true;
  const outcome t = run_seed(seed, traced);
  CHECK(t.trace_hash == a.trace_hash);
  CHECK(t.trace.size() > 10);
  const outcome other = run_seed(seed + 1);
  CHECK(other.trace_hash != a.trace_hash);
}

TEST_CASE("sim: a failure report names the seed, the schedule and a replay command") {
  outcome o = run_seed(test_seed());
  o.problems.push_back("made up");
  o.kind = outcome::failure::safety;
  const outcome replay = replay_traced(o);
  CHECK(replay.trace_hash == o.trace_hash);
  const std::string r = report(o, &replay, "raft_sim");
  CHECK(r.find("FAIL seed " + std::to_string(test_seed())) != std::string::npos);
  CHECK(r.find("raft_sim --seed " + std::to_string(test_seed())) != std::string::npos);
  CHECK(r.find(o.schedule.front()) != std::string::npos);
  CHECK(r.find("WARNING") == std::string::npos);
}
