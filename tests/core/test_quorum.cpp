// Tests for raft/core/quorum.hpp: majorities, joint majorities (§4.3) and vote counting.
#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <vector>

#include "raft/core/quorum.hpp"
#include "test_support.hpp"

using namespace raft;
using raft_test::ids;

namespace {

/// match(id) from a table; asking about a node not in the table throws, which fails the test.
auto match_from(const std::map<std::uint64_t, std::uint64_t>& table) {
  return [&table](node_id id) { return index_t{table.at(id.value)}; };
}

/// vote(id) from a table: 'y' granted, 'n' refused, anything else (or absent) no answer yet.
auto votes_from(const std::map<std::uint64_t, char>& table) {
  return [&table](node_id id) -> std::optional<bool> {
    const auto it = table.find(id.value);
    if (it == table.end() || (it->second != 'y' && it->second != 'n')) return std::nullopt;
    return it->second == 'y';
  };
}

}  // namespace

TEST_CASE("a majority of n voters is more than half of them") {
  CHECK(majority(1) == 1);
  CHECK(majority(2) == 2);
  CHECK(majority(3) == 2);
  CHECK(majority(4) == 3);
  CHECK(majority(5) == 3);
  CHECK(majority(6) == 4);
  CHECK(majority(7) == 4);
}

// ---- majority_index --------------------------------------------------------------------------

TEST_CASE("a single voter's match index is the majority index") {
  const std::map<std::uint64_t, std::uint64_t> m{{1, 7}};
  CHECK(majority_index(ids({1}), match_from(m)) == index_t{7});
}

TEST_CASE("the majority index of three voters is their median") {
  const std::map<std::uint64_t, std::uint64_t> m{{1, 9}, {2, 3}, {3, 5}};
  CHECK(majority_index(ids({1, 2, 3}), match_from(m)) == index_t{5});
}

TEST_CASE("with an even number of voters the majority index needs more than half") {
  // Four voters need three: the third-highest of {4, 3, 2, 1} is 2.
  const std::map<std::uint64_t, std::uint64_t> m{{1, 1}, {2, 2}, {3, 3}, {4, 4}};
  CHECK(majority_index(ids({1, 2, 3, 4}), match_from(m)) == index_t{2});
  // Two voters need both.
  CHECK(majority_index(ids({1, 4}), match_from(m)) == index_t{1});
}

TEST_CASE("the majority index does not depend on the order of the voters") {
  const std::map<std::uint64_t, std::uint64_t> m{{1, 8}, {2, 0}, {3, 8}, {4, 2}, {5, 6}};
  CHECK(majority_index(ids({1, 2, 3, 4, 5}), match_from(m)) == index_t{6});
  CHECK(majority_index(ids({5, 4, 3, 2, 1}), match_from(m)) == index_t{6});
  CHECK(majority_index(ids({2, 5, 1, 4, 3}), match_from(m)) == index_t{6});
}

TEST_CASE("an empty voter set puts no limit on the majority index") {
  const std::map<std::uint64_t, std::uint64_t> m;
  CHECK(majority_index({}, match_from(m)) == index_t{std::numeric_limits<std::uint64_t>::max()});
}

// ---- quorum_index ----------------------------------------------------------------------------

TEST_CASE("outside joint consensus the quorum index is the voters' majority index") {
  const std::map<std::uint64_t, std::uint64_t> m{{1, 10}, {2, 7}, {3, 4}};
  CHECK(quorum_index(configuration{ids({1, 2, 3}), {}, {}}, match_from(m)) == index_t{7});
}

TEST_CASE("during joint consensus an index needs a majority of both halves") {
  // New half {4,5,6} is at 9; old half {1,2,3} has only reached 3 on a majority.
  const std::map<std::uint64_t, std::uint64_t> m{{1, 9}, {2, 3}, {3, 1}, {4, 9}, {5, 9}, {6, 0}};
  const configuration c{ids({4, 5, 6}), ids({1, 2, 3}), {}};
  CHECK(quorum_index(c, match_from(m)) == index_t{3});
  // Swapping the roles of the halves gives the same answer: both must agree.
  const configuration swapped{ids({1, 2, 3}), ids({4, 5, 6}), {}};
  CHECK(quorum_index(swapped, match_from(m)) == index_t{3});
}

TEST_CASE("during joint consensus a node in both halves counts in both") {
  // Voters {1,2,3}, outgoing {3,4,5}: node 3 at 8 helps both halves reach 8.
  const std::map<std::uint64_t, std::uint64_t> m{{1, 8}, {2, 2}, {3, 8}, {4, 8}, {5, 1}};
  const configuration c{ids({1, 2, 3}), ids({3, 4, 5}), {}};
  CHECK(quorum_index(c, match_from(m)) == index_t{8});
}

TEST_CASE("learners never count towards the quorum index") {
  // The table has no entry for learner 9: asking about it would throw.
  const std::map<std::uint64_t, std::uint64_t> m{{1, 5}, {2, 4}, {3, 1}};
  const configuration c{ids({1, 2, 3}), {}, ids({9})};
  CHECK(quorum_index(c, match_from(m)) == index_t{4});
}

// ---- majority_vote ---------------------------------------------------------------------------

TEST_CASE("a vote is won as soon as a majority grants it") {
  CHECK(majority_vote(ids({1, 2, 3}), votes_from({{1, 'y'}, {2, 'y'}})) == vote_result::won);
  CHECK(majority_vote(ids({1}), votes_from({{1, 'y'}})) == vote_result::won);
  CHECK(majority_vote(ids({1, 2, 3, 4, 5}), votes_from({{1, 'y'}, {2, 'n'}, {3, 'y'}, {5, 'y'}})) ==
        vote_result::won);
}

TEST_CASE("a vote stays pending while the outcome still depends on missing answers") {
  CHECK(majority_vote(ids({1, 2, 3}), votes_from({{1, 'y'}})) == vote_result::pending);
  CHECK(majority_vote(ids({1, 2, 3}), votes_from({{1, 'y'}, {2, 'n'}})) == vote_result::pending);
  CHECK(majority_vote(ids({1, 2, 3, 4}), votes_from({{1, 'y'}, {2, 'y'}})) == vote_result::pending);
  CHECK(majority_vote(ids({1, 2, 3}), votes_from({})) == vote_result::pending);
}

TEST_CASE("a vote is lost as soon as a majority can no longer be reached") {
  CHECK(majority_vote(ids({1, 2, 3}), votes_from({{1, 'n'}, {2, 'n'}})) == vote_result::lost);
  CHECK(majority_vote(ids({1}), votes_from({{1, 'n'}})) == vote_result::lost);
  // Four voters need three grants: two refusals already decide it, even with two grants.
  CHECK(majority_vote(ids({1, 2, 3, 4}), votes_from({{1, 'n'}, {2, 'n'}})) == vote_result::lost);
  CHECK(majority_vote(ids({1, 2, 3, 4}), votes_from({{1, 'y'}, {2, 'y'}, {3, 'n'}, {4, 'n'}})) ==
        vote_result::lost);
}

TEST_CASE("an empty voter set is won without any vote") {
  CHECK(majority_vote({}, votes_from({})) == vote_result::won);
}

// ---- quorum_vote -----------------------------------------------------------------------------

TEST_CASE("outside joint consensus the quorum vote is the voters' majority vote") {
  const configuration c{ids({1, 2, 3}), {}, ids({7})};
  CHECK(quorum_vote(c, votes_from({{1, 'y'}, {2, 'y'}})) == vote_result::won);
  CHECK(quorum_vote(c, votes_from({{1, 'n'}, {2, 'n'}, {7, 'y'}})) == vote_result::lost);
  CHECK(quorum_vote(c, votes_from({{1, 'y'}, {7, 'y'}})) == vote_result::pending);  // learner ignored
}

TEST_CASE("during joint consensus a vote is won only when both halves are won") {
  const configuration c{ids({4, 5, 6}), ids({1, 2, 3}), {}};
  CHECK(quorum_vote(c, votes_from({{4, 'y'}, {5, 'y'}, {1, 'y'}, {2, 'y'}})) == vote_result::won);
  // The new half alone is not enough...
  CHECK(quorum_vote(c, votes_from({{4, 'y'}, {5, 'y'}, {6, 'y'}})) == vote_result::pending);
  // ...nor the old half alone.
  CHECK(quorum_vote(c, votes_from({{1, 'y'}, {2, 'y'}, {3, 'y'}})) == vote_result::pending);
}

TEST_CASE("during joint consensus losing either half loses the vote") {
  const configuration c{ids({4, 5, 6}), ids({1, 2, 3}), {}};
  CHECK(quorum_vote(c, votes_from({{4, 'y'}, {5, 'y'}, {6, 'y'}, {1, 'n'}, {2, 'n'}})) == vote_result::lost);
  CHECK(quorum_vote(c, votes_from({{4, 'n'}, {5, 'n'}, {1, 'y'}, {2, 'y'}, {3, 'y'}})) == vote_result::lost);
}

TEST_CASE("during joint consensus a node in both halves votes in both") {
  const configuration c{ids({1, 2, 3}), ids({3, 4, 5}), {}};
  CHECK(quorum_vote(c, votes_from({{1, 'y'}, {3, 'y'}, {4, 'y'}})) == vote_result::won);
  CHECK(quorum_vote(c, votes_from({{1, 'y'}, {2, 'y'}, {3, 'n'}, {5, 'n'}})) == vote_result::lost);
}
