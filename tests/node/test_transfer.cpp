// Leadership transfer (thesis §3.10) on the simulated cluster.
#include <doctest/doctest.h>

#include "ops_support.hpp"

using namespace node_test;

namespace {

std::optional<result<node_id>> transfer(cluster<>& c, node_id via, node_id target) {
  return await_op<node_id>(c, [&](auto h) { c.node(via).async_transfer_leadership(target, std::move(h)); });
}

node_id some_other(const cluster<>& c, node_id not_this) {
  for (node_id id : c.ids())
    if (id != not_this) return id;
  throw std::logic_error("no other node");
}

}  // namespace

TEST_CASE("leadership moves to a lagging node once it has caught up; proposals wait meanwhile") {
  cluster<> c(3, 21);
  const node_id old = c.wait_for_leader();
  const node_id target = some_other(c, old);
  // The target misses a batch of writes and is behind when the transfer starts.
  c.network().isolate(target, c.ids());
  REQUIRE(write_some(c, "k", 30) == 30);
  c.network().heal();
  REQUIRE(c.node(target).log().last_index() < c.node(old).log().last_index());

  std::optional<result<node_id>> done;
  c.node(old).async_transfer_leadership(target, [&](result<node_id> r) { done = r; });
  // While the transfer runs, the leader refuses new proposals with a clear error.
  auto refused = c.propose(old, kv_state_machine::put("late", "x"));
  c.run_until([&] { return done.has_value() && refused->done(); }, std::chrono::seconds(5));
  REQUIRE(done);
  REQUIRE(refused->done());
  CHECK(refused->outcome->error().code == errc::transferring);
  REQUIRE(done->has_value());
  CHECK(**done == target);
  CHECK(c.leader() == target);
  CHECK(c.node(old).role() == role::follower);
  CHECK(c.node(old).metrics().leadership_transfers >= 1);
  // The new leader has every write, and the cluster goes on.
  CHECK(c.state_machine(target).find("k29") == "v");
  REQUIRE(write_some(c, "after", 5) == 5);
}

TEST_CASE("a transfer to a dead node gives up after an election timeout, and the leader carries on") {
  cluster<> c(3, 22);
  const node_id leader = c.wait_for_leader();
  const node_id target = some_other(c, leader);
  c.crash(target);
  const auto started = c.now();
  auto r = transfer(c, leader, target);
  REQUIRE(r);
  CHECK(error_of(r) == errc::timeout);
  CHECK(c.now() - started >= std::chrono::milliseconds(300));  // the election timeout maximum
  CHECK(c.leader() == leader);
  REQUIRE(write_some(c, "still", 5) == 5);
}

TEST_CASE("a transfer needs a voter and a leader") {
  cluster<> c(3, 23);
  const node_id leader = c.wait_for_leader();
  const node_id follower = some_other(c, leader);
  CHECK(error_of(transfer(c, follower, leader)) == errc::not_leader);
  CHECK(error_of(transfer(c, leader, node_id{9})) == errc::invalid_argument);
  auto self = transfer(c, leader, leader);
  REQUIRE((self && self->has_value()));
  CHECK(**self == leader);
}

TEST_CASE("leadership transfer under a lossy network keeps one leader per term and every commit") {
  const std::uint64_t first = env_u64("RAFT_TEST_SEED", 7100);
  const std::uint64_t count = env_u64("RAFT_SEEDS", 500) / 20 + 1;
  MESSAGE("leadership transfer under faults: seeds " << first << ".." << first + count - 1
                                                      << " (replay with RAFT_TEST_SEED=<seed> RAFT_SEEDS=1)");
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    CAPTURE(seed);
    cluster<> c(5, seed);
    c.network().faults.drop = 0.1;
    c.network().faults.duplicate = 0.05;
    std::mt19937_64 rng(seed);
    for (int round = 0; round < 4; ++round) {
      const node_id leader = c.wait_for_leader();
      const auto ids = c.ids();
      const node_id target = ids[rng() % ids.size()];
      std::optional<result<node_id>> done;
      c.node(leader).async_transfer_leadership(target, [&](result<node_id> r) { done = r; });
      write_some(c, "r" + std::to_string(round), 5);
      c.run_until([&] { return done.has_value(); }, std::chrono::seconds(5));
      REQUIRE(done);
      CHECK((done->has_value() || done->error().code == errc::timeout ||
             done->error().code == errc::leadership_lost));
    }
    REQUIRE(c.wait_until_converged());
  }
}
