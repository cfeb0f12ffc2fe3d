// Quiescence of idle groups (options::quiesce) on raft::testing::multi_cluster: idle groups go
// quiet and the processes then exchange only liveness pings; a proposal wakes a group; a quiesced
// group whose leader's process crashes or pauses elects a new leader once the liveness reports
// the process down; a follower that missed the last heartbeat wakes its group without deposing
// the leader. Seeded: each case names its seed (RAFT_MULTI_SEED replays one).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "raft/testing/multi_cluster.hpp"

#include "multi_support.hpp"

namespace {

using namespace std::chrono_literals;
using raft::group_id;
using raft::node_id;
using raft::testing::kv_state_machine;
using raft::testing::multi_cluster;


raft::options quiet_options() {
  raft::options o;
  o.quiesce = true;
  return o;  // heartbeat 50 ms, election timeout 150-300 ms
}

/// Every replica of every group of the processes that are up is quiet.
bool all_quiet(multi_cluster<>& c) {
  for (node_id p : c.processes()) {
    if (!c.is_up(p)) continue;
    for (group_id g : c.groups())
      if (!c.node(p, g).quiesced()) return false;
  }
  return true;
}

std::uint64_t pings(multi_cluster<>& c) {
  std::uint64_t n = 0;
  for (node_id p : c.processes())
    if (c.is_up(p)) n += c.router(p).stats().pings_sent;
  return n;
}

/// Every group has a leader on a process that is up and not `except`.
bool leaders_elsewhere(multi_cluster<>& c, node_id except) {
  for (group_id g : c.groups()) {
    bool found = false;
    for (node_id p : c.processes())
      if (p != except && c.is_up(p) && c.node(p, g).role() == raft::role::leader) found = true;
    if (!found) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("quiescence: idle groups go quiet; then the processes exchange only pings; a proposal wakes one group") {
  for (const std::uint64_t seed : multi_test::seeds({1, 2, 3, 4})) {
    MESSAGE("seed " << seed << " (RAFT_MULTI_SEED=" << seed << " replays it)");
    multi_cluster<> c(3, 10, seed, quiet_options());
    REQUIRE(c.wait_for_leaders(10s));
    REQUIRE(c.run_until([&] { return all_quiet(c); }, 5s));

    // Five quiet seconds: every message on the network is a liveness ping.
    const auto sent_before = c.network().counters().sent;
    const auto pings_before = pings(c);
    c.run_for(5s);
    CHECK(all_quiet(c));
    const auto sent = c.network().counters().sent - sent_before;
    CHECK(sent == pings(c) - pings_before);
    CHECK(sent > 0);
    CHECK(sent <= 3 * 2 * (5000 / 50 + 1));  // one per pair of processes per interval, not per group

    // A proposal wakes its group (and only it), commits everywhere, and the group goes quiet again.
    const group_id g{4};
    const node_id leader = *c.leader(g);
    const auto woken_before = c.node(leader, g).metrics().woken_for_work;
    auto put = c.propose(leader, g, kv_state_machine::put("k", "v"));
    REQUIRE(c.run_until([&] { return put->done(); }, 2s));
    CHECK(put->succeeded());
    CHECK(c.node(leader, g).metrics().woken_for_work == woken_before + 1);
    for (node_id p : c.processes()) CHECK(c.node(p, group_id{5}).quiesced());  // another group slept on
    REQUIRE(c.run_until([&] { return all_quiet(c); }, 5s));
    for (node_id p : c.processes()) CHECK(c.state_machine(p, g).find("k") == "v");
    CHECK(*c.leader(g) == leader);
  }
}

// A loaded machine answers late. Acknowledgements that take longer than a heartbeat interval
// must not keep a group from going quiet: its heartbeats would keep the machine loaded.
TEST_CASE("quiescence: idle groups go quiet when acknowledgements take longer than a heartbeat interval") {
  for (const std::uint64_t seed : multi_test::seeds({1, 2, 3, 4})) {
    MESSAGE("seed " << seed << " (RAFT_MULTI_SEED=" << seed << " replays it)");
    multi_cluster<> c(3, 6, seed, quiet_options());
    c.network().faults.min_delay = 40ms;  // a round trip of 80 ms, against a 50 ms heartbeat interval
    c.network().faults.max_delay = 45ms;
    REQUIRE(c.wait_for_leaders(10s));
    CHECK(c.run_until([&] { return all_quiet(c); }, 5s));
    // And a proposal wakes its group, commits, and the group goes quiet again.
    const group_id g{3};
    auto put = c.propose(*c.leader(g), g, kv_state_machine::put("late", "acks"));
    REQUIRE(c.run_until([&] { return put->done(); }, 2s));
    CHECK(put->succeeded());
    CHECK(c.run_until([&] { return all_quiet(c); }, 5s));
  }
}

TEST_CASE("quiescence: when the process leading quiet groups crashes, its groups elect elsewhere") {
  for (const std::uint64_t seed : multi_test::seeds({1, 2, 3, 4})) {
    MESSAGE("seed " << seed << " (RAFT_MULTI_SEED=" << seed << " replays it)");
    multi_cluster<> c(3, 9, seed, quiet_options());
    REQUIRE(c.wait_for_leaders(10s));
    REQUIRE(c.run_until([&] { return all_quiet(c); }, 5s));
    const node_id victim = *c.leader(group_id{1});
    std::vector<group_id> led_by_victim;
    for (group_id g : c.groups())
      if (*c.leader(g) == victim) led_by_victim.push_back(g);
    c.crash(victim);
    // Found down after an election timeout of silence (150 ms), then an election (150-300 ms
    // timeout, pre-vote and vote): well within a second of virtual time.
    REQUIRE(c.run_until([&] { return leaders_elsewhere(c, victim); }, 1s));
    // The liveness report woke the groups the victim led (a follower may instead wake for the
    // other's campaign), and no other group.
    for (group_id g : c.groups()) {
      std::uint64_t woken = 0;
      for (node_id p : c.processes())
        if (p != victim) woken += c.node(p, g).metrics().woken_leader_down;
      const bool led = std::find(led_by_victim.begin(), led_by_victim.end(), g) != led_by_victim.end();
      CHECK(led == (woken > 0));
    }
    // They commit.
    for (group_id g : c.groups()) {
      auto put = c.propose(*c.leader(g), g, kv_state_machine::put("after", "crash"));
      REQUIRE(c.run_until([&] { return put->done(); }, 2s));
      CHECK(put->succeeded());
    }
    c.restart(victim);
    REQUIRE(c.run_until([&] { return all_quiet(c); }, 10s));
    for (group_id g : c.groups()) CHECK(c.state_machine(victim, g).find("after") == "crash");
  }
}

TEST_CASE("quiescence: a paused leader process is replaced, and steps down when it resumes") {
  for (const std::uint64_t seed : multi_test::seeds({1, 2, 3, 4})) {
    MESSAGE("seed " << seed << " (RAFT_MULTI_SEED=" << seed << " replays it)");
    multi_cluster<> c(3, 6, seed, quiet_options());
    REQUIRE(c.wait_for_leaders(10s));
    REQUIRE(c.run_until([&] { return all_quiet(c); }, 5s));
    const node_id paused = *c.leader(group_id{2});
    c.pause(paused);
    REQUIRE(c.run_until([&] { return leaders_elsewhere(c, paused); }, 1s));
    c.resume(paused);
    // Back, it learns the newer terms and leads nothing; everything goes quiet again.
    REQUIRE(c.run_until(
        [&] {
          for (group_id g : c.groups())
            if (c.node(paused, g).role() == raft::role::leader) return false;
          return all_quiet(c);
        },
        10s));
  }
}

TEST_CASE("quiescence: a follower that missed the last heartbeat wakes its group, which keeps its leader") {
  for (const std::uint64_t seed : multi_test::seeds({1, 2, 3, 4})) {
    MESSAGE("seed " << seed << " (RAFT_MULTI_SEED=" << seed << " replays it)");
    multi_cluster<> c(3, 1, seed, quiet_options());
    const group_id g{1};
    REQUIRE(c.wait_for_leaders(10s));
    const node_id leader = *c.leader(g);
    const raft::term_t term = c.node(leader, g).term();
    node_id straggler{leader.value % 3 + 1};
    // The straggler never gets the leader's last heartbeat before quiet.
    int dropped = 0;
    c.network().drop_if = [&](const raft::message& m) {
      const auto* a = m.body.get_if<raft::append_request>();
      if (a && a->quiesce && m.to == straggler) return ++dropped, true;
      return false;
    };
    REQUIRE(c.run_until([&] { return dropped > 0; }, 5s));
    CHECK_FALSE(c.node(straggler, g).quiesced());
    c.network().drop_if = nullptr;
    // Its timer fires, its pre-vote wakes the others; nobody grants it, the leader stays.
    REQUIRE(c.run_until([&] { return all_quiet(c); }, 10s));
    CHECK(*c.leader(g) == leader);
    CHECK(c.node(leader, g).term() == term);
    CHECK(c.node(straggler, g).metrics().pre_votes_started > 0);
  }
}
