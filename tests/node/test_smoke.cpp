#include <doctest/doctest.h>

#include "raft/testing/cluster.hpp"

using namespace raft;
using namespace raft::testing;
using namespace std::chrono_literals;

TEST_CASE("a three-node cluster elects a leader and replicates a command") {
  cluster<> c(3, 7);
  const node_id leader = c.wait_for_leader();
  auto p = c.propose_and_wait(kv_state_machine::put("a", "1"));
  REQUIRE(p->done());
  REQUIRE(p->succeeded());
  CHECK(c.wait_until_converged());
  for (node_id id : c.ids()) CHECK(c.state_machine(id).find("a") == std::optional<std::string>("1"));
  CHECK(c.node(leader).role() == role::leader);
}
