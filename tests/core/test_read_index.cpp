// Tests for raft/core/read_index.hpp: heartbeat rounds, the reads that wait for them, and the
// lease with the two events that end it early (TimeoutNow, a configuration change).
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "raft/core/read_index.hpp"

using namespace raft;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;
using reads = read_index<time_point, int>;  // a read is completed by "done" number N

time_point at(std::chrono::milliseconds ms) { return time_point{} + ms; }

std::vector<int> done_of(const std::vector<reads::read>& rs) {
  std::vector<int> out;
  for (const auto& r : rs) out.push_back(r.done);
  return out;
}

}  // namespace

TEST_CASE("read_index: reads join the next round and are confirmed by it, in order") {
  reads ri;
  ri.add(index_t{7}, at(1000ms), 1);
  ri.add(index_t{7}, at(1000ms), 2);
  CHECK(ri.round() == 0);
  CHECK(ri.start_round(at(10ms)) == 1);
  ri.add(index_t{8}, at(1000ms), 3);  // after round 1 started: waits for round 2
  CHECK(ri.start_round(at(20ms)) == 2);
  CHECK(ri.confirm(0, 100ms).empty());
  const auto first = ri.confirm(1, 100ms);
  CHECK(done_of(first) == std::vector<int>{1, 2});
  CHECK(first.front().index == index_t{7});
  CHECK(ri.confirmed() == 1);
  CHECK(ri.confirm(1, 100ms).empty());  // nothing new
  const auto second = ri.confirm(2, 100ms);
  CHECK(done_of(second) == std::vector<int>{3});
  CHECK(second.front().index == index_t{8});
  CHECK(ri.size() == 0);
}

TEST_CASE("read_index: a later round confirms every earlier one") {
  reads ri;
  ri.add(index_t{3}, at(1000ms), 1);
  ri.start_round(at(0ms));
  ri.add(index_t{3}, at(1000ms), 2);
  ri.start_round(at(5ms));
  ri.start_round(at(9ms));
  CHECK(done_of(ri.confirm(3, 100ms)) == std::vector<int>{1, 2});
}

TEST_CASE("read_index: reads before the leader's first commit of its term wait for it") {
  reads ri;
  ri.add(index_t{0}, at(1000ms), 1);
  CHECK(ri.waiting_for_commit());
  ri.start_round(at(0ms));  // a heartbeat: the read has no index yet, so it does not join
  CHECK(ri.confirm(1, 100ms).empty());
  ri.committed_in_term(index_t{12});
  CHECK_FALSE(ri.waiting_for_commit());
  ri.start_round(at(5ms));
  const auto r = ri.confirm(2, 100ms);
  REQUIRE(r.size() == 1);
  CHECK(r.front().index == index_t{12});
}

TEST_CASE("read_index: a confirmed round gives a lease from its start") {
  reads ri;
  CHECK_FALSE(ri.lease_holds(at(0ms)));
  ri.start_round(at(10ms));
  ri.start_round(at(30ms));
  (void)ri.confirm(1, 100ms);  // round 1 started at 10 ms
  CHECK(ri.lease_holds(at(109ms)));
  CHECK_FALSE(ri.lease_holds(at(110ms)));
  (void)ri.confirm(2, 100ms);
  CHECK(ri.lease_holds(at(129ms)));
  CHECK_FALSE(ri.lease_holds(at(130ms)));
}

TEST_CASE("read_index: after TimeoutNow no round renews the lease until the next term") {
  reads ri;
  ri.start_round(at(0ms));
  (void)ri.confirm(1, 100ms);
  REQUIRE(ri.lease_holds(at(50ms)));
  ri.revoke_lease();
  CHECK_FALSE(ri.lease_holds(at(50ms)));
  ri.start_round(at(60ms));
  ri.add(index_t{4}, at(1000ms), 1);
  ri.start_round(at(70ms));
  CHECK(done_of(ri.confirm(3, 100ms)) == std::vector<int>{1});  // reads still confirmed by rounds
  CHECK_FALSE(ri.lease_holds(at(80ms)));                          // but no lease
  ri.reset();  // a new term as leader
  ri.start_round(at(200ms));
  (void)ri.confirm(1, 100ms);
  CHECK(ri.lease_holds(at(250ms)));
}

TEST_CASE("read_index: a configuration change ends the lease; earlier rounds never renew it") {
  reads ri;
  ri.start_round(at(0ms));
  (void)ri.confirm(1, 100ms);
  ri.start_round(at(20ms));  // round 2, under the old configuration
  ri.configuration_changed();
  CHECK_FALSE(ri.lease_holds(at(30ms)));
  (void)ri.confirm(2, 100ms);
  CHECK_FALSE(ri.lease_holds(at(30ms)));  // round 2 started before the change
  ri.start_round(at(40ms));
  (void)ri.confirm(3, 100ms);
  CHECK(ri.lease_holds(at(139ms)));
}

TEST_CASE("read_index: expired reads leave from the front; take_all empties the queue") {
  reads ri;
  ri.add(index_t{1}, at(100ms), 1);
  ri.add(index_t{1}, at(200ms), 2);
  ri.add(index_t{1}, at(300ms), 3);
  CHECK(ri.take_expired(at(99ms)).empty());
  CHECK(done_of(ri.take_expired(at(200ms))) == std::vector<int>{1, 2});
  CHECK(done_of(ri.take_all()) == std::vector<int>{3});
  CHECK(ri.size() == 0);
}

TEST_CASE("read_index: past max_unconfirmed unconfirmed rounds the oldest is forgotten") {
  reads ri;
  for (std::size_t k = 0; k < reads::max_unconfirmed + 1; ++k) ri.start_round(at(std::chrono::milliseconds(k)));
  (void)ri.confirm(1, 100ms);  // round 1's start was forgotten: no lease from it
  CHECK_FALSE(ri.lease_holds(at(50ms)));
  (void)ri.confirm(2, 100ms);  // round 2 started at 1 ms
  CHECK(ri.lease_holds(at(100ms)));
  CHECK_FALSE(ri.lease_holds(at(101ms)));
}
