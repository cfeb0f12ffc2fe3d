// Many groups per process on raft::testing::multi_cluster: every group elects and commits over one
// transport per process, each group's state stays its own, and a whole process crashing (all its
// groups at once) leaves every group live and its committed entries intact. Seeded: each case
// names its seed (RAFT_MULTI_SEED replays one).
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "raft/testing/multi_cluster.hpp"

#include "multi_support.hpp"

namespace {

using namespace std::chrono_literals;
using raft::group_id;
using raft::node_id;
using raft::testing::kv_state_machine;
using raft::testing::multi_cluster;


std::string value_of(group_id g, int round) { return "g" + std::to_string(g.value) + "r" + std::to_string(round); }

/// Puts key "k" = value_of(g, round) into every group through its leader; true once all committed.
bool put_everywhere(multi_cluster<>& c, int round) {
  std::vector<std::shared_ptr<raft::testing::proposal<std::string>>> pending;
  for (group_id g : c.groups()) {
    const auto leader = c.leader(g);
    if (!leader) return false;
    pending.push_back(c.propose(*leader, g, kv_state_machine::put("k", value_of(g, round))));
  }
  c.run_until([&] { return std::all_of(pending.begin(), pending.end(), [](auto& p) { return p->done(); }); }, 5s);
  return std::all_of(pending.begin(), pending.end(), [](auto& p) { return p->succeeded(); });
}

/// Every replica of every group that is up holds exactly its own group's value of `round`.
void check_every_replica_holds(multi_cluster<>& c, int round) {
  for (node_id p : c.processes()) {
    if (!c.is_up(p)) continue;
    for (group_id g : c.groups()) {
      INFO("process " << p.value << ", group " << g.value);
      CHECK(c.state_machine(p, g).find("k") == value_of(g, round));
      CHECK(c.state_machine(p, g).data().size() == 1);
    }
  }
}

}  // namespace

TEST_CASE("multi_cluster: 24 groups on 3 processes elect, commit and keep their states apart") {
  for (const std::uint64_t seed : multi_test::seeds({1, 2, 3})) {
    MESSAGE("seed " << seed << " (RAFT_MULTI_SEED=" << seed << " replays it)");
    multi_cluster<> c(3, 24, seed);
    REQUIRE(c.wait_for_leaders(10s));
    REQUIRE(put_everywhere(c, 1));
    c.run_for(1s);  // followers apply what their leader committed
    check_every_replica_holds(c, 1);
    for (node_id p : c.processes()) {
      CHECK(c.router(p).groups() == 24);
      CHECK(c.router(p).stats().unknown_group == 0);
      CHECK(c.router(p).stats().routed > 0);
    }
  }
}

TEST_CASE("multi_cluster: a process that crashes takes all its groups down; they elect elsewhere and recover") {
  for (const std::uint64_t seed : multi_test::seeds({1, 2, 3})) {
    MESSAGE("seed " << seed << " (RAFT_MULTI_SEED=" << seed << " replays it)");
    multi_cluster<> c(3, 12, seed);
    REQUIRE(c.wait_for_leaders(10s));
    REQUIRE(put_everywhere(c, 1));

    // The process leading the most groups crashes.
    std::map<node_id, int> led;
    for (group_id g : c.groups()) ++led[*c.leader(g)];
    node_id victim = led.begin()->first;
    for (auto& [p, n] : led)
      if (n > led[victim]) victim = p;
    c.crash(victim);
    CHECK_FALSE(c.is_up(victim));
    REQUIRE(c.wait_for_leaders(10s));
    for (group_id g : c.groups()) CHECK(*c.leader(g) != victim);
    REQUIRE(put_everywhere(c, 2));

    // Back up: every group of it catches up from its storage and its leader.
    c.restart(victim);
    c.run_for(2s);
    check_every_replica_holds(c, 2);
    CHECK(c.router(victim).groups() == 12);
  }
}

TEST_CASE("multi_cluster: a paused process's groups are replaced as leaders, and rejoin on resume") {
  for (const std::uint64_t seed : multi_test::seeds({1, 2, 3})) {
    MESSAGE("seed " << seed << " (RAFT_MULTI_SEED=" << seed << " replays it)");
    multi_cluster<> c(3, 8, seed);
    REQUIRE(c.wait_for_leaders(10s));
    const node_id paused = *c.leader(group_id{1});
    c.pause(paused);
    // The others elect leaders for every group the paused process led.
    REQUIRE(c.run_until(
        [&] {
          for (group_id g : c.groups()) {
            bool other_leader = false;
            for (node_id p : c.processes())
              if (p != paused && c.node(p, g).role() == raft::role::leader) other_leader = true;
            if (!other_leader) return false;
          }
          return true;
        },
        10s));
    c.resume(paused);
    REQUIRE(c.wait_for_leaders(10s));
    REQUIRE(put_everywhere(c, 3));
    c.run_for(1s);
    check_every_replica_holds(c, 3);
  }
}

TEST_CASE("multi_cluster: groups are created and destroyed at run time on running processes") {
  for (const std::uint64_t seed : multi_test::seeds({1, 2, 3})) {
    MESSAGE("seed " << seed << " (RAFT_MULTI_SEED=" << seed << " replays it)");
    multi_cluster<> c(3, 4, seed);
    REQUIRE(c.wait_for_leaders(10s));
    REQUIRE(put_everywhere(c, 1));

    // A new group on the running processes: it elects and commits; the others are untouched.
    c.add_group(group_id{9});
    CHECK(c.groups().size() == 5);
    for (node_id p : c.processes()) CHECK(c.router(p).is_open(group_id{9}));
    REQUIRE(c.wait_for_leaders(10s));
    auto put = c.propose(*c.leader(group_id{9}), group_id{9}, kv_state_machine::put("k", "new"));
    REQUIRE(c.run_until([&] { return put->done(); }, 5s));
    CHECK(put->succeeded());

    // One goes away: its replicas close on every process, and the rest keep working.
    c.remove_group(group_id{2});
    for (node_id p : c.processes()) CHECK_FALSE(c.router(p).is_open(group_id{2}));
    REQUIRE(put_everywhere(c, 2));
    c.run_for(1s);
    check_every_replica_holds(c, 2);
    CHECK(c.state_machine(node_id{1}, group_id{9}).find("k") == value_of(group_id{9}, 2));

    // The removed id can be created again, empty.
    c.add_group(group_id{2});
    REQUIRE(c.wait_for_leaders(10s));
    for (node_id p : c.processes()) CHECK_FALSE(c.state_machine(p, group_id{2}).find("k").has_value());
  }
}

// options::align_heartbeats: the leaders of a process tick at a few shared instants (the
// multiples of the heartbeat interval plus one of raft::heartbeat_grid_phases offsets), so that
// on a real transport their heartbeats share the router's flush of each, a write per peer (that
// one turn makes one flush is group_router's test).
TEST_CASE("multi_cluster: aligned heartbeats of idle groups go out at a few shared instants") {
  for (const std::uint64_t seed : multi_test::seeds({1})) {  // (64 groups: one seed keeps it quick)
    MESSAGE("seed " << seed << " (RAFT_MULTI_SEED=" << seed << " replays it)");
    // The distinct (instant, sender) pairs of the heartbeats of an idle second, with more groups
    // than phases (enough that their scattered ticks outnumber the grid's instants).
    constexpr std::size_t groups = 4 * raft::heartbeat_grid_phases;
    auto heartbeat_instants = [&](bool align) {
      raft::options o;
      o.align_heartbeats = align;  // (quiescence off: every group heartbeats all along)
      multi_cluster<> c(3, groups, seed, o);
      REQUIRE(c.wait_for_leaders(10s));
      REQUIRE(put_everywhere(c, 1));
      std::set<std::pair<raft::testing::virtual_clock::time_point, node_id>> instants;
      std::uint64_t heartbeats = 0;
      c.network().on_send = [&](const raft::message& m) {
        const auto* r = m.body.get_if<raft::append_request>();
        if (r == nullptr || !r->entries.empty()) return;
        ++heartbeats;
        instants.emplace(raft::testing::virtual_clock::now(), m.from);
      };
      c.run_for(1s);
      c.network().on_send = nullptr;
      CHECK(heartbeats >= groups * 2 * 20 - 2 * groups);  // every leader heartbeats both followers 20 times a second
      check_every_replica_holds(c, 1);
      return instants.size();
    };
    const std::size_t scattered = heartbeat_instants(false);
    const std::size_t aligned = heartbeat_instants(true);
    MESSAGE("distinct (instant, process) of an idle second's heartbeats: " << scattered << " scattered, " << aligned
                                                                           << " aligned");
    constexpr std::size_t grid_instants = 3 * raft::heartbeat_grid_phases * 21;  // per process, phase, tick
    REQUIRE(scattered > grid_instants);  // so the next check can fail
    CHECK(aligned <= grid_instants);
    CHECK(aligned > 3 * 21);  // but spread over the phases: not one burst per tick per process
  }
}
