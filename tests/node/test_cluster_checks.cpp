// raft::testing::cluster's invariant checks can be switched off one by one (cluster::checks()),
// so a test's own oracle can run alone. Each test starts the cluster from hand-made logs that
// break a property, shows that the check catches it when on, and that nothing is reported when
// that check alone is off, although the breach is really there.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "node_support.hpp"

using namespace node_test;

namespace cluster_checks_test {

/// Three founders whose logs hold [configuration, i2] with every entry of term 1, but node 3's
/// entry 2 is a different command from the others': the same index and term, different content.
std::vector<persistent_state> diverging_logs() {
  std::vector<persistent_state> logs(3, hand_made(3, 1, {1, 1}));
  logs[2].entries[1].data = kv_state_machine::put("i2", "not what the others have");
  return logs;
}

/// What `run` throws, or "" if it throws nothing.
template <class F>
std::string violation_of(F run) {
  try {
    run();
  } catch (const invariant_violation& e) {
    return e.what();
  }
  return {};
}

bool has(const std::string& text, const char* part) { return text.find(part) != std::string::npos; }

}  // namespace cluster_checks_test

TEST_CASE("cluster_checks: every check is on by default; none() switches all of them off") {
  const cluster_checks all;
  CHECK(all.applied_within_commit);
  CHECK(all.commit_within_log);
  CHECK(all.election_safety);
  CHECK(all.leader_append_only);
  CHECK(all.leader_completeness);
  CHECK(all.state_machine_safety);
  CHECK(all.log_matching);
  constexpr cluster_checks off = cluster_checks::none();
  CHECK_FALSE(off.applied_within_commit);
  CHECK_FALSE(off.commit_within_log);
  CHECK_FALSE(off.election_safety);
  CHECK_FALSE(off.leader_append_only);
  CHECK_FALSE(off.leader_completeness);
  CHECK_FALSE(off.state_machine_safety);
  CHECK_FALSE(off.log_matching);
  cluster<> c(3, 1);
  CHECK(c.checks() == all);
  c.checks() = off;
  CHECK(c.checks() == off);
  CHECK(std::as_const(c).checks() == off);
}

TEST_CASE("cluster_checks: log matching is reported when checked, and only then") {
  using namespace cluster_checks_test;
  // Every link cut: no leader, nothing committed, so only log matching can see the divergence.
  // Each election timeout is a step; the check runs every 64th.
  auto run = [](bool log_matching) {
    cluster<> c(3, 21, {}, diverging_logs());
    c.checks().log_matching = log_matching;
    c.network().partition({}, c.ids());
    c.run_for(30s);
    CHECK(c.committed() == index_t{0});
    CHECK_FALSE(c.node(node_id{1}).log().at(index_t{2}) == c.node(node_id{3}).log().at(index_t{2}));
  };
  const std::string on = violation_of([&] { run(true); });
  CHECK(has(on, "log matching broken between nodes 1 and 3 at index 2"));
  CHECK(has(on, "[seed 21,"));
  CHECK(violation_of([&] { run(false); }).empty());
}

TEST_CASE("cluster_checks: state machine safety is reported when checked; committed() is kept regardless") {
  using namespace cluster_checks_test;
  // Connected: a leader commits entry 2 everywhere, and node 3's differs from the others'.
  auto run = [](bool state_machine_safety) {
    cluster<> c(3, 22, {}, diverging_logs());
    c.checks().log_matching = false;
    c.checks().state_machine_safety = state_machine_safety;
    // (Outside REQUIRE, which would catch the violation itself.)
    const bool committed = c.propose_and_wait(kv_state_machine::put("x", "1"))->succeeded();
    const bool converged = c.wait_until_converged();
    REQUIRE(committed);
    REQUIRE(converged);
    CHECK(c.committed() >= index_t{3});
    // The breach is real: the replicas applied different commands at index 2.
    CHECK(c.state_machine(node_id{1}).find("i2") == std::optional<std::string>("t1"));
    CHECK(c.state_machine(node_id{3}).find("i2") == std::optional<std::string>("not what the others have"));
  };
  const std::string on = violation_of([&] { run(true); });
  CHECK(has(on, "committed entry 2 differs on node"));
  CHECK(violation_of([&] { run(false); }).empty());
  // With everything off, log matching is not reported either.
  CHECK(violation_of([] {
          cluster<> c(3, 22, {}, diverging_logs());
          c.checks() = cluster_checks::none();
          const bool committed = c.propose_and_wait(kv_state_machine::put("x", "1"))->succeeded();
          const bool converged = c.wait_until_converged();
          c.run_for(10s);
          REQUIRE(committed);
          REQUIRE(converged);
          CHECK(c.committed() >= index_t{3});
        }).empty());
}

TEST_CASE("cluster_checks: leader completeness is reported when checked, and only then") {
  using namespace cluster_checks_test;
  // Nodes 1 and 2 commit entry 2 (term 1) while node 3 is cut off. Node 3's hand-made log holds
  // a term-5 entry at index 2 instead, so once the leader of 1 and 2 is gone, node 3's log is
  // the more up-to-date one: it wins an election without the committed entry.
  auto run = [](bool leader_completeness, bool& node_3_led) {
    std::vector<persistent_state> logs(3, hand_made(3, 1, {1, 1}));
    logs[2] = hand_made(3, 5, {1, 5});
    cluster<> c(3, 23, {}, std::move(logs));
    c.checks().log_matching = false;
    c.checks().state_machine_safety = false;
    c.checks().leader_completeness = leader_completeness;
    c.network().isolate(node_id{3}, c.ids());
    const bool committed = c.propose_and_wait(kv_state_machine::put("x", "1"))->succeeded();
    REQUIRE(committed);
    REQUIRE(c.committed() >= index_t{2});
    c.crash(*c.leader());
    c.network().heal();
    node_3_led = c.run_until([&] { return c.is_up(node_id{3}) && c.node(node_id{3}).role() == role::leader; }, 10s);
    c.run_for(1s);
  };
  bool led = false;
  const std::string on = violation_of([&] { run(true, led); });
  CHECK(has(on, "leader 3 of term"));
  CHECK(has(on, "lacks committed entry 2"));
  led = false;
  CHECK(violation_of([&] { run(false, led); }).empty());
  CHECK(led);
}
