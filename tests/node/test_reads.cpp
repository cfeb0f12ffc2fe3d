// Linearizable reads (thesis §6.4): ReadIndex on the leader, follower reads, lease reads, and
// what a deposed leader must not do.
#include <doctest/doctest.h>

#include "ops_support.hpp"

using namespace node_test;

namespace {

std::optional<result<index_t>> read(cluster<>& c, node_id via,
                                    std::chrono::nanoseconds limit = std::chrono::seconds(5)) {
  return await_op<index_t>(c, [&](auto h) { c.node(via).async_read_barrier(std::move(h)); }, limit);
}

node_id another(const cluster<>& c, node_id not_this, std::size_t nth = 0) {
  for (node_id id : c.ids())
    if (id != not_this && nth-- == 0) return id;
  throw std::logic_error("no other node");
}

/// A cluster with lease reads on (seed `seed`), where x=1 is written and the leader's lease is
/// in force: a read on it was served from the lease. Returns the leader.
node_id leader_with_lease(cluster<>& c) {
  const node_id leader = c.wait_for_leader();
  REQUIRE(c.propose_and_wait(kv_state_machine::put("x", "1"))->succeeded());
  c.run_for(std::chrono::milliseconds(60));  // a heartbeat round is acknowledged: lease on
  auto r = read(c, leader);
  REQUIRE((r && r->has_value()));
  REQUIRE(c.node(leader).metrics().lease_reads == 1);
  return leader;
}

options with_leases() {
  options o;
  o.lease_reads = true;
  return o;
}

}  // namespace

TEST_CASE("a read barrier on the leader covers every write acknowledged before it") {
  cluster<> c(3, 31);
  const node_id leader = c.wait_for_leader();
  auto w = c.propose_and_wait(kv_state_machine::put("x", "1"));
  REQUIRE(w->succeeded());
  const index_t written = c.node(leader).commit_index();
  const auto rounds_before = c.network().counters().append_requests;
  auto r = read(c, leader);
  REQUIRE((r && r->has_value()));
  CHECK(**r >= written);
  CHECK(c.node(leader).applied_index() >= **r);
  CHECK(c.state_machine(leader).find("x") == "1");
  // Confirming leadership took a heartbeat round, not a log entry.
  CHECK(c.network().counters().append_requests > rounds_before);
  CHECK(c.node(leader).log().last_index() == written);
  CHECK(c.node(leader).metrics().read_barriers == 1);
}

TEST_CASE("a read barrier on a deposed leader fails instead of returning stale data") {
  for (bool check_quorum : {true, false}) {
    CAPTURE(check_quorum);
    options o;
    o.check_quorum = check_quorum;
    cluster<> c(3, 32, o);
    const node_id old = c.wait_for_leader();
    REQUIRE(c.propose_and_wait(kv_state_machine::put("x", "old"))->succeeded());
    c.network().isolate(old, c.ids());
    // The majority elects a new leader and overwrites x; the old leader does not know.
    REQUIRE(c.run_until([&] { auto l = c.leader(); return l && *l != old && c.node(*l).term() > c.node(old).term(); },
                        std::chrono::seconds(5)));
    const node_id fresh = *c.leader();
    auto w = c.propose(fresh, kv_state_machine::put("x", "new"));
    c.run_until([&] { return w->done(); }, std::chrono::seconds(5));
    REQUIRE(w->succeeded());
    auto r = read(c, old);
    REQUIRE(r);
    CHECK_FALSE(r->has_value());
    CHECK((r->error().code == errc::leadership_lost || r->error().code == errc::timeout ||
           r->error().code == errc::not_leader));
    CHECK(c.state_machine(old).find("x") == "old");  // the stale value it must not vouch for
  }
}

TEST_CASE("a follower read sees every write acknowledged before it started, under a lossy network") {
  const std::uint64_t first = env_u64("RAFT_TEST_SEED", 7200);
  const std::uint64_t count = env_u64("RAFT_SEEDS", 500) / 20 + 1;
  MESSAGE("follower reads: seeds " << first << ".." << first + count - 1
                                   << " (replay with RAFT_TEST_SEED=<seed> RAFT_SEEDS=1)");
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    CAPTURE(seed);
    cluster<> c(3, seed);
    c.network().faults.drop = 0.1;
    c.network().faults.duplicate = 0.05;
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 10; ++i) {
      const std::string value = std::to_string(i);
      auto w = c.propose_and_wait(kv_state_machine::put("k", value));
      if (!w->succeeded()) continue;  // not acknowledged: nothing to check
      const auto l = c.leader();
      if (!l) continue;
      const node_id via = another(c, *l, rng() % 2);
      auto r = read(c, via);
      REQUIRE(r);
      if (!r->has_value()) continue;  // a read may fail (lost messages); it must not be stale
      CHECK(c.node(via).applied_index() >= **r);
      CHECK(c.state_machine(via).find("k") == value);
    }
  }
}

TEST_CASE("lease reads skip the heartbeat round while the lease holds, and stop when it lapses") {
  options o;
  o.lease_reads = true;
  cluster<> c(3, 33, o);
  const node_id leader = c.wait_for_leader();
  REQUIRE(c.propose_and_wait(kv_state_machine::put("x", "1"))->succeeded());
  c.run_for(std::chrono::milliseconds(60));  // a heartbeat round is acknowledged: lease on
  auto r = read(c, leader);
  REQUIRE((r && r->has_value()));
  CHECK(c.node(leader).metrics().lease_reads == 1);

  // Cut off, the leader's lease runs out before anyone else can be elected; then reads fail.
  c.network().isolate(leader, c.ids());
  c.run_for(std::chrono::milliseconds(150));
  r = read(c, leader);
  REQUIRE(r);
  CHECK_FALSE(r->has_value());
  CHECK(c.node(leader).metrics().lease_reads == 1);
}

TEST_CASE("a follower read with no known leader fails at once") {
  cluster<> c(3, 34);
  const node_id leader = c.wait_for_leader();
  const node_id f = another(c, leader);
  c.crash(leader);
  c.network().isolate(f, c.ids());
  c.run_for(std::chrono::seconds(1));  // f campaigns and forgets the leader
  auto r = read(c, f, std::chrono::milliseconds(10));
  REQUIRE(r);
  CHECK(error_of(r) == errc::not_leader);
}

TEST_CASE("metrics and events report what the node did") {
  std::vector<node_event> events;
  options o;
  o.on_event = [&](const node_event& e) { events.push_back(e); };
  cluster<> c(3, 35, o);
  const node_id leader = c.wait_for_leader();
  REQUIRE(write_some(c, "m", 10) == 10);
  const auto m = c.node(leader).metrics();
  CHECK(m.times_leader == 1);
  CHECK(m.elections_started >= 1);
  CHECK(m.proposals_accepted == 10);
  CHECK(m.entries_committed >= 12);  // bootstrap configuration, no-op, ten commands
  CHECK(m.entries_applied == m.applied_index.value);
  CHECK(m.messages_sent > 0);
  CHECK(m.bytes_sent > m.messages_sent);
  CHECK(m.storage_flushes > 0);
  CHECK(m.role == role::leader);
  auto count = [&](event_kind k, node_id n) {
    return std::count_if(events.begin(), events.end(), [&](const node_event& e) { return e.kind == k && e.node == n; });
  };
  CHECK(count(event_kind::role_changed, leader) >= 2);  // candidate, leader (and pre-candidate)
  for (node_id id : c.ids()) CHECK(count(event_kind::leader_changed, id) >= 1);
  CHECK(count(event_kind::membership_changed, leader) == 1);  // the bootstrap configuration
  const auto last_role = std::find_if(events.rbegin(), events.rend(), [&](const node_event& e) {
    return e.kind == event_kind::role_changed && e.node == leader;
  });
  REQUIRE(last_role != events.rend());
  CHECK(last_role->role == role::leader);
}

TEST_CASE("a leader that sent TimeoutNow serves no lease read for the rest of its term") {
  // Lease reads rely on voters refusing votes while they hear from the leader; a transfer's
  // vote request overrides that, so the lease no longer proves no other leader exists.
  cluster<> c(3, 37, with_leases());
  const node_id old_leader = leader_with_lease(c);

  // The old leader hears nobody from now on; its TimeoutNow still reaches the target.
  for (node_id id : c.ids())
    if (id != old_leader) c.network().cut(id, old_leader);
  const node_id target = another(c, old_leader);
  const term_t old_term = c.node(old_leader).term();
  c.node(old_leader).async_transfer_leadership(target, [](result<node_id>) {});
  REQUIRE(c.run_until([&] { return c.node(target).role() == role::leader; }, std::chrono::milliseconds(50)));
  auto w = c.propose(target, kv_state_machine::put("x", "2"));
  REQUIRE(c.run_until([&] { return w->done(); }, std::chrono::milliseconds(50)));
  REQUIRE(w->succeeded());
  // Well within the old lease's time: the old leader still thinks it leads term old_term.
  REQUIRE(c.node(old_leader).role() == role::leader);
  REQUIRE(c.node(old_leader).term() == old_term);

  auto r = read(c, old_leader);
  REQUIRE(r);
  CHECK_MESSAGE(!r->has_value(), "the deposed leader served a read at index ", r->has_value() ? (**r).value : 0,
                " where x is ", c.state_machine(old_leader).find("x").value_or("absent"));
  CHECK(c.node(old_leader).metrics().lease_reads == 1);
}

TEST_CASE("a lease confirmed under one configuration does not serve reads after a membership change") {
  cluster<> c(3, 39, with_leases());
  const node_id leader = leader_with_lease(c);
  // A learner joins: the configuration changes, and the next read takes a heartbeat round.
  c.add_node(node_id{4});
  auto added = await_op<index_t>(c, [&](auto h) { c.node(leader).async_add_learner(node_id{4}, std::move(h)); });
  REQUIRE((added && added->has_value()));
  const auto lease_reads = c.node(leader).metrics().lease_reads;
  const auto rounds_before = c.network().counters().append_requests;
  c.node(leader).async_read_barrier([](result<index_t>) {});
  CHECK(c.node(leader).metrics().lease_reads == lease_reads);  // not served from the lease
  c.run_for(std::chrono::milliseconds(5));
  CHECK(c.network().counters().append_requests > rounds_before);
}

TEST_CASE("an answer to a read a follower sent before it restarted does not serve a read after") {
  // F forwards a read; the leader's answer is delayed; F crashes and restarts (in the same term)
  // and falls behind; x=2 is acknowledged; F forwards a new read. The old answer (an older read
  // index) arrives first and must not serve the new read: F would read x=1.
  cluster<> c(3, 41);
  const node_id l = c.wait_for_leader();
  REQUIRE(c.propose_and_wait(kv_state_machine::put("x", "1"))->succeeded());
  REQUIRE(c.wait_until_converged());
  const node_id f = another(c, l);
  auto& net = c.network();
  net.faults.min_delay = net.faults.max_delay = std::chrono::microseconds(500);
  // The leader hears no acknowledgement: F's read waits for its heartbeat round.
  net.hold_if = [&](const message& m) { return m.to == l && m.body.holds<append_response>(); };
  c.node(f).async_read_barrier([](result<index_t>) {});
  c.run_for(std::chrono::milliseconds(2));
  c.crash(f);
  c.run_for(std::chrono::milliseconds(1));
  c.restart(f);
  REQUIRE(c.run_until([&] { return c.node(f).applied_index() >= c.node(l).commit_index(); }, std::chrono::seconds(1)));
  REQUIRE(c.state_machine(f).find("x") == "1");
  // F hears no more entries; the acknowledgements flow again, and every read answer to F waits.
  net.drop_if = [&](const message& m) { return m.from == l && m.to == f && m.body.holds<append_request>(); };
  net.release_held();
  net.hold_if = [&](const message& m) { return m.to == f && m.body.holds<read_index_response>(); };
  REQUIRE(c.propose_and_wait(kv_state_machine::put("x", "2"))->succeeded());
  auto r = std::make_shared<std::optional<result<index_t>>>();
  c.node(f).async_read_barrier([r](result<index_t> v) { *r = std::move(v); });
  c.run_for(std::chrono::milliseconds(5));
  REQUIRE(net.held() == 2);  // the old read's answer, then the new one's
  net.release_held();
  c.run_until([&] { return r->has_value(); }, std::chrono::seconds(1));
  if (*r && (*r)->has_value())
    CHECK_MESSAGE(c.state_machine(f).find("x") == "2", "a read on node ", f, " at index ", (**r)->value,
                  " returned x=", c.state_machine(f).find("x").value_or("absent"), " after x=2 was acknowledged");
}
