// Membership changes (thesis chapter 4) on the simulated cluster: learners, promotion, removal,
// replacing every member, removing the leader, partitions and crashes during joint consensus.
#include <doctest/doctest.h>

#include "ops_support.hpp"

using namespace node_test;

namespace {

using kv = kv_state_machine;

std::optional<result<index_t>> add_learner(cluster<>& c, node_id via, node_id id) {
  return await_op<index_t>(c, [&](auto h) { c.node(via).async_add_learner(id, std::move(h)); });
}
std::optional<result<index_t>> promote(cluster<>& c, node_id via, node_id id) {
  return await_op<index_t>(c, [&](auto h) { c.node(via).async_promote(id, std::move(h)); });
}
std::optional<result<index_t>> remove(cluster<>& c, node_id via, node_id id) {
  return await_op<index_t>(c, [&](auto h) { c.node(via).async_remove(id, std::move(h)); });
}

/// Adds `id` as a learner through the leader, waits until it caught up, promotes it.
void add_voter(cluster<>& c, node_id id) {
  c.add_node(id);
  auto r = add_learner(c, c.wait_for_leader(), id);
  REQUIRE_MESSAGE((r && r->has_value()), c.describe("add_learner failed"));
  REQUIRE(c.run_until([&] { return c.node(id).applied_index() >= c.node(*c.leader()).commit_index(); },
                      std::chrono::seconds(10)));
  r = promote(c, c.wait_for_leader(), id);
  REQUIRE_MESSAGE((r && r->has_value()), c.describe("promote failed"));
}

}  // namespace

TEST_CASE("a learner receives the log without voting, then is promoted under load") {
  cluster<> c(3, 11);
  const node_id leader = c.wait_for_leader();
  REQUIRE(write_some(c, "before", 20) == 20);
  c.add_node(node_id{4});
  auto r = add_learner(c, leader, node_id{4});
  REQUIRE((r && r->has_value()));
  CHECK(c.node(leader).status().config.learners == std::vector<node_id>{node_id{4}});
  CHECK(c.node(leader).status().config.voters.size() == 3);
  // The learner catches up on everything, including what was written before it joined.
  REQUIRE(write_some(c, "during", 20) == 20);
  REQUIRE(settle(c, c.ids()));
  CHECK(c.state_machine(node_id{4}).find("before0") == "v");
  CHECK(c.state_machine(node_id{4}).find("during19") == "v");
  CHECK(c.node(node_id{4}).role() == role::follower);
  CHECK(c.node(node_id{4}).metrics().elections_started == 0);

  // A learner never campaigns, even when it stops hearing from the leader.
  c.network().isolate(node_id{4}, c.ids());
  c.run_for(std::chrono::seconds(3));
  CHECK(c.node(node_id{4}).metrics().pre_votes_started == 0);
  CHECK(c.node(node_id{4}).term() == c.node(leader).term());
  c.network().heal();

  // Promotion goes through joint consensus and ends in a four-voter configuration.
  r = promote(c, c.wait_for_leader(), node_id{4});
  REQUIRE((r && r->has_value()));
  REQUIRE(settle(c, c.ids()));
  const auto cfg = c.node(*c.leader()).status().config;
  CHECK(sorted_ids(cfg.voters) == std::vector<node_id>{node_id{1}, node_id{2}, node_id{3}, node_id{4}});
  CHECK(cfg.learners.empty());
  CHECK(c.node(*c.leader()).metrics().membership_changes >= 2);  // C_old,new and C_new

  // Four voters need three: with two down, nothing commits; with one down, writes go on.
  c.crash(node_id{4});
  REQUIRE(write_some(c, "after", 5) == 5);
}

TEST_CASE("one membership change at a time; bad requests get clear errors") {
  cluster<> c(3, 12);
  const node_id leader = c.wait_for_leader();
  c.add_node(node_id{4});
  c.add_node(node_id{5});
  std::optional<result<index_t>> first, second;
  c.node(leader).async_add_learner(node_id{4}, [&](result<index_t> r) { first = r; });
  c.node(leader).async_add_learner(node_id{5}, [&](result<index_t> r) { second = r; });
  c.run_until([&] { return first && second; }, std::chrono::seconds(5));
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->has_value());
  CHECK(error_of(second) == errc::change_in_progress);

  const node_id follower = c.ids()[leader == node_id{1} ? 1 : 0];
  CHECK(error_of(add_learner(c, follower, node_id{5})) == errc::not_leader);
  CHECK(error_of(promote(c, leader, node_id{2})) == errc::invalid_argument);   // a voter already
  CHECK(error_of(promote(c, leader, node_id{9})) == errc::invalid_argument);   // not a member
  CHECK(error_of(remove(c, leader, node_id{9})) == errc::invalid_argument);
  CHECK(error_of(add_learner(c, leader, node_id{4})) == errc::invalid_argument);  // is a member
  auto none = await_op<index_t>(c, [&](auto h) { c.node(leader).async_change_membership(configuration{}, std::move(h)); });
  CHECK(error_of(none) == errc::invalid_argument);
}

TEST_CASE("every member is replaced one by one; the old members are then not needed") {
  cluster<> c(3, 13);
  c.wait_for_leader();
  std::size_t written = 0;
  for (std::uint64_t k = 0; k < 3; ++k) {
    const node_id fresh{4 + k}, old{1 + k};
    add_voter(c, fresh);
    written += write_some(c, "w" + std::to_string(k), 10);
    auto r = remove(c, c.wait_for_leader(), old);
    REQUIRE(r);
    // Removing the leader itself may end in its stepping down before it reports.
    CHECK_MESSAGE((r->has_value() || r->error().code == errc::leadership_lost), c.describe("remove failed"));
    std::vector<node_id> members;
    for (std::uint64_t m = 2 + k; m <= 4 + k; ++m) members.push_back(node_id{m});
    REQUIRE_MESSAGE(settle(c, members), c.describe("did not settle"));
    written += write_some(c, "x" + std::to_string(k), 10);
  }
  CHECK(written == 60);
  REQUIRE(settle(c, {node_id{4}, node_id{5}, node_id{6}}));
  const node_id leader = *c.leader();
  CHECK(leader.value >= 4);
  CHECK(sorted_ids(c.node(leader).status().config.voters) ==
        std::vector<node_id>{node_id{4}, node_id{5}, node_id{6}});
  for (std::uint64_t k = 1; k <= 3; ++k) c.crash(node_id{k});
  REQUIRE(write_some(c, "final", 5) == 5);
  for (node_id id : {node_id{4}, node_id{5}, node_id{6}}) {
    CHECK(c.state_machine(id).find("w0") == std::nullopt);  // keys are w<k><i>
    CHECK(c.state_machine(id).find("w00") == "v");
    CHECK(c.state_machine(id).find("x29") == "v");
  }
}

TEST_CASE("removing the leader: it steps down once C_new commits and never leads again") {
  cluster<> c(3, 14);
  const node_id old = c.wait_for_leader();
  REQUIRE(write_some(c, "a", 10) == 10);
  auto r = remove(c, old, old);
  REQUIRE(r);
  // The change completes (the old leader reports it before stepping down) or, if it steps down
  // first, is reported as leadership lost; either way C_new commits.
  CHECK((r->has_value() || r->error().code == errc::leadership_lost));
  std::vector<node_id> rest;
  for (node_id id : c.ids())
    if (id != old) rest.push_back(id);
  REQUIRE(c.run_until([&] { auto l = c.leader(); return l && *l != old; }, std::chrono::seconds(5)));
  REQUIRE(settle(c, rest));
  CHECK_FALSE(c.node(*c.leader()).status().config.is_member(old));
  // The removed node keeps running but cannot disrupt: no term inflation, no leadership.
  const term_t t = c.node(*c.leader()).term();
  c.run_for(std::chrono::seconds(5));
  REQUIRE(write_some(c, "b", 10) == 10);
  CHECK(c.node(*c.leader()).term() == t);
  CHECK(c.node(old).role() != role::leader);
}

TEST_CASE("a removed node that never learns of its removal cannot depose the leader") {
  cluster<> c(3, 15);
  const node_id leader = c.wait_for_leader();
  const node_id victim = leader == node_id{3} ? node_id{2} : node_id{3};
  c.network().isolate(victim, c.ids());  // it misses C_new and keeps its old configuration
  auto r = remove(c, leader, victim);
  REQUIRE((r && r->has_value()));
  const term_t t = c.node(leader).term();
  c.network().heal();
  c.run_for(std::chrono::seconds(5));  // the victim times out again and again
  CHECK(c.leader() == leader);
  CHECK(c.node(leader).term() == t);
  REQUIRE(write_some(c, "ok", 5) == 5);
}

TEST_CASE("partitions and crashes during joint consensus: one leader per term, no lost commit, the change completes") {
  const std::uint64_t first = env_u64("RAFT_TEST_SEED", 7000);
  const std::uint64_t count = env_u64("RAFT_SEEDS", 500) / 20 + 1;
  MESSAGE("joint consensus under faults: seeds " << first << ".." << first + count - 1
                                                 << " (replay with RAFT_TEST_SEED=<seed> RAFT_SEEDS=1)");
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    CAPTURE(seed);
    cluster<> c(3, seed);
    c.network().faults.drop = 0.05;
    c.network().faults.duplicate = 0.02;
    std::mt19937_64 rng(seed);
    c.wait_for_leader();
    add_voter(c, node_id{4});
    c.add_node(node_id{5});
    const node_id leader = c.wait_for_leader();
    REQUIRE((add_learner(c, leader, node_id{5}) && true));
    c.run_until([&] { return c.node(node_id{5}).applied_index() >= c.node(leader).commit_index(); }, std::chrono::seconds(5));
    // Start {1,2,3,4} -> {2,3,4,5} and hit it at a random moment with a partition or a crash.
    configuration target{{node_id{2}, node_id{3}, node_id{4}, node_id{5}}, {}, {}};
    std::optional<result<index_t>> change;
    if (auto l = c.leader()) c.node(*l).async_change_membership(target, [&](result<index_t> r) { change = r; });
    c.run_for(std::chrono::microseconds(rng() % 20001));
    const auto all = c.ids();
    const node_id hit = all[rng() % all.size()];
    if (rng() % 2) {
      c.network().isolate(c.leader().value_or(hit), all);
    } else {
      c.crash(c.leader().value_or(hit));
    }
    write_some(c, "p", 10);
    c.run_for(std::chrono::seconds(1));
    c.network().heal();
    for (node_id id : all) c.restart(id);
    // Whoever leads now finishes what was started: the log ends in a non-joint configuration.
    const std::vector<node_id> members{node_id{2}, node_id{3}, node_id{4}, node_id{5}};
    REQUIRE_MESSAGE(settle(c, members, std::chrono::seconds(20)), c.describe("did not settle"));
    const auto cfg = c.node(*c.leader()).status().config;
    CHECK_FALSE(cfg.joint());
    CHECK((cfg.voters.size() == 4));
    REQUIRE(write_some(c, "q", 5) == 5);
  }
}

TEST_CASE("demoting a voter to a learner: it votes with C_old until C_new, then only learns") {
  cluster<> c(3, 21);
  const node_id leader = c.wait_for_leader();
  REQUIRE(c.propose_and_wait(kv::put("a", "1"))->succeeded());
  const node_id demoted = c.ids()[leader == node_id{2} ? 2 : 1];
  configuration target;
  for (node_id id : c.ids()) (id == demoted ? target.learners : target.voters).push_back(id);
  auto r = await_op<index_t>(c, [&](auto h) { c.node(leader).async_change_membership(target, std::move(h)); });
  REQUIRE_MESSAGE((r && r->has_value()), c.describe("the demotion did not complete"));
  REQUIRE(settle(c, c.ids()));
  for (node_id id : c.ids()) {
    CAPTURE(id);
    CHECK_FALSE(c.node(id).failure());
    CHECK(c.node(id).status().config == configuration{target.voters, {}, {demoted}});
  }
  CHECK_FALSE(c.node(leader).status().config.is_voter(demoted));
  // The learner still receives the log; the two voters commit without it.
  c.network().isolate(demoted, c.ids());
  REQUIRE(c.propose_and_wait(kv::put("b", "2"))->succeeded());
  c.network().heal();
  REQUIRE(settle(c, c.ids()));
  CHECK(c.state_machine(demoted).find("b") == "2");
  // And it can be promoted back.
  r = promote(c, *c.leader(), demoted);
  REQUIRE((r && r->has_value()));
  CHECK(c.node(*c.leader()).status().config.is_voter(demoted));
}

TEST_CASE("demoting the leader: it steps down once C_new commits and a voter takes over") {
  cluster<> c(3, 22);
  const node_id leader = c.wait_for_leader();
  configuration target;
  for (node_id id : c.ids()) (id == leader ? target.learners : target.voters).push_back(id);
  auto r = await_op<index_t>(c, [&](auto h) { c.node(leader).async_change_membership(target, std::move(h)); });
  REQUIRE_MESSAGE((r && r->has_value()), c.describe("the demotion did not complete"));
  const node_id next = c.wait_for_leader();
  CHECK(next != leader);
  REQUIRE(c.propose_and_wait(kv::put("c", "3"))->succeeded());
  REQUIRE(settle(c, c.ids()));
  for (node_id id : c.ids()) CHECK_FALSE(c.node(id).failure());
  CHECK(c.node(next).status().config.learners == std::vector<node_id>{leader});
  CHECK(c.state_machine(leader).find("c") == "3");
}

TEST_CASE("C_new held only by nodes it removes or demotes, and the leader gone: one of them is elected and commits it") {
  // Voters {L, P, Q, R}; the change makes R, 5 and 6 the voters, L and P learners. L appends
  // C_new, which reaches only P, and crashes. Q, R, 5 and 6 hold C_old,new: a candidate among
  // them needs three of {L, P, Q, R}, and P, whose log is longer, refuses. Only P can be
  // elected, by C_new's voters; it must campaign although C_new does not make it a voter.
  cluster<> c(4, 23);
  const node_id l = c.wait_for_leader();
  std::vector<node_id> others;
  for (node_id id : c.ids())
    if (id != l) others.push_back(id);
  const node_id p = others[0], q = others[1], r = others[2];
  for (std::uint64_t id : {5, 6}) {
    c.add_node(node_id{id});
    REQUIRE(add_learner(c, l, node_id{id}).value().has_value());
  }
  REQUIRE(settle(c, c.ids()));
  const configuration target{sorted_ids({r, node_id{5}, node_id{6}}), {}, sorted_ids({l, p})};
  c.network().drop_if = [&](const message& m) {
    const auto* a = m.body.get_if<append_request>();
    if (a == nullptr || m.from != l || m.to == p) return false;
    for (const auto& e : a->entries)
      if (e.kind == entry_kind::configuration && !decode_configuration(e.data.bytes())->joint()) return true;
    return false;
  };
  c.node(l).async_change_membership(target, [](result<index_t>) {});
  REQUIRE(c.run_until([&] { return c.node(p).status().config == target; }, std::chrono::seconds(5)));
  c.crash(l);
  c.network().drop_if = nullptr;
  REQUIRE_MESSAGE(c.run_until([&] {
    const auto leader = c.leader();
    return leader && c.node(*leader).status().config == target &&
           c.node(*leader).commit_index() >= c.node(*leader).log().last_index();
  }, std::chrono::seconds(10)), c.describe("no leader committed C_new"));
  REQUIRE(c.propose_and_wait(kv::put("after", "1"))->succeeded());
  const node_id now = *c.leader();
  CHECK(target.is_voter(now));
  (void)q;
}
