// Tests for raft/core/confchange.hpp: the entry a membership change appends, for every shape of
// target, and a property test over random pairs of configurations.
#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "raft/core/confchange.hpp"
#include "raft/core/quorum.hpp"
#include "raft/detail/jitter_rng.hpp"
#include "test_support.hpp"

using namespace raft;
using raft_test::ids;

namespace {

configuration conf(std::initializer_list<std::uint64_t> voters, std::initializer_list<std::uint64_t> outgoing = {},
                   std::initializer_list<std::uint64_t> learners = {}) {
  return configuration{ids(voters), ids(outgoing), ids(learners)};
}

/// Plans the change and checks what every plan must satisfy: a planned entry is valid, decodes
/// to itself, and ending the joint phase gives exactly the target.
membership_step plan(const configuration& current, const configuration& target) {
  membership_step s = plan_membership_change(current, target);
  if (s.refused == nullptr && !s.unchanged) {
    CHECK(validate(s.entry) == nullptr);
    CHECK(decode_configuration(encode(s.entry).bytes()) == s.entry);
    CHECK(leave_joint(s.entry) == sorted(target));
  }
  return s;
}

}  // namespace

TEST_CASE("confchange: demoting a voter keeps it voting with the outgoing half") {
  const auto s = plan(conf({1, 2, 3}), conf({1, 3}, {}, {2}));
  REQUIRE(s.refused == nullptr);
  CHECK(s.entry == conf({1, 3}, {1, 2, 3}, {2}));
  CHECK(s.entry.is_voter(node_id{2}));
  CHECK(leave_joint(s.entry) == conf({1, 3}, {}, {2}));
  CHECK_FALSE(leave_joint(s.entry).is_voter(node_id{2}));
}

TEST_CASE("confchange: demoting the leader, or every voter but one") {
  CHECK(plan(conf({1, 2, 3}), conf({2, 3}, {}, {1})).entry == conf({2, 3}, {1, 2, 3}, {1}));
  CHECK(plan(conf({1, 2, 3}), conf({3}, {}, {1, 2})).entry == conf({3}, {1, 2, 3}, {1, 2}));
}

TEST_CASE("confchange: promoting a learner is a joint change") {
  const auto s = plan(conf({1, 2, 3}, {}, {4}), conf({1, 2, 3, 4}));
  REQUIRE(s.refused == nullptr);
  CHECK(s.entry == conf({1, 2, 3, 4}, {1, 2, 3}));
}

TEST_CASE("confchange: swapping a voter and a learner in one change") {
  const auto s = plan(conf({1, 2, 3}, {}, {4}), conf({1, 2, 4}, {}, {3}));
  REQUIRE(s.refused == nullptr);
  CHECK(s.entry == conf({1, 2, 4}, {1, 2, 3}, {3}));
}

TEST_CASE("confchange: replacing a majority, or every voter") {
  CHECK(plan(conf({1, 2, 3}), conf({1, 4, 5})).entry == conf({1, 4, 5}, {1, 2, 3}));
  CHECK(plan(conf({1, 2, 3}), conf({4, 5, 6})).entry == conf({4, 5, 6}, {1, 2, 3}));
}

TEST_CASE("confchange: adding and removing voters in one step") {
  CHECK(plan(conf({1, 2, 3}), conf({1, 2, 4, 5})).entry == conf({1, 2, 4, 5}, {1, 2, 3}));
  CHECK(plan(conf({3, 1, 2}), conf({2})).entry == conf({2}, {1, 2, 3}));
}

TEST_CASE("confchange: a change of learners only takes one step") {
  CHECK(plan(conf({1, 2, 3}), conf({1, 2, 3}, {}, {5, 4})).entry == conf({1, 2, 3}, {}, {4, 5}));
  CHECK(plan(conf({1, 2, 3}, {}, {4}), conf({3, 2, 1})).entry == conf({1, 2, 3}));
}

TEST_CASE("confchange: the same members in another order change nothing") {
  const auto s = plan(conf({1, 2, 3}, {}, {4}), conf({3, 1, 2}, {}, {4}));
  CHECK(s.refused == nullptr);
  CHECK(s.unchanged);
}

TEST_CASE("confchange: invalid targets and a change during a change are refused") {
  auto refused = [](const configuration& current, const configuration& target) {
    const auto s = plan_membership_change(current, target);
    return s.refused == nullptr ? std::string_view{} : std::string_view{s.refused};
  };
  CHECK(refused(conf({1, 2, 3}), conf({})).find("at least one voter") != std::string_view::npos);
  CHECK(refused(conf({1, 2, 3}), conf({1, 2}, {}, {2})).find("voter and a learner") != std::string_view::npos);
  CHECK(refused(conf({1, 2, 3}), conf({1, 1})).find("twice") != std::string_view::npos);
  CHECK(refused(conf({1, 2, 3}), conf({1, 0})).find("reserved") != std::string_view::npos);
  CHECK(refused(conf({1, 2, 3}), conf({1, 2}, {1, 2, 3})).find("outgoing") != std::string_view::npos);
  CHECK(refused(conf({1, 2}, {1, 2, 3}), conf({1, 2})).find("in progress") != std::string_view::npos);
}

TEST_CASE("confchange: every valid pair of configurations gives a decodable plan (property)") {
  detail::jitter_rng rng(raft_test::test_seed());
  auto random_config = [&] {
    configuration c;
    for (std::uint64_t id = 1; id <= 6; ++id) {
      switch (rng.below(3)) {
        case 0: c.voters.push_back(node_id{id}); break;
        case 1: c.learners.push_back(node_id{id}); break;
        default: break;  // not a member
      }
    }
    return c;
  };
  int joint = 0, single = 0, unchanged = 0;
  for (int k = 0; k < 2000; ++k) {
    const configuration current = random_config(), target = random_config();
    if (validate(current) != nullptr) continue;
    const auto s = plan(current, target);
    CAPTURE(k);
    if (validate(target) != nullptr) {
      CHECK(s.refused != nullptr);
      continue;
    }
    REQUIRE(s.refused == nullptr);
    if (s.unchanged) {
      ++unchanged;
      CHECK(sorted(current) == sorted(target));
      continue;
    }
    // Joint exactly when the voters change; the outgoing half is the current voters.
    const bool voters_change = sorted(current).voters != sorted(target).voters;
    CHECK(s.entry.joint() == voters_change);
    if (voters_change) {
      ++joint;
      CHECK(s.entry.outgoing == sorted(current).voters);
      // Every current voter still votes during the joint phase (demoted ones included).
      for (node_id v : current.voters) CHECK(s.entry.is_voter(v));
    } else {
      ++single;
    }
  }
  CHECK(joint > 100);
  CHECK(single > 10);
  CHECK(unchanged > 0);
}
