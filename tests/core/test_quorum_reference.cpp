// Property tests: quorum.hpp against a deliberately naive reference, on random configurations
// (1..7 voters per half; single, overlapping and disjoint joint halves) and random facts.
//
// Replay a failure with RAFT_TEST_SEED=<seed printed by the run>.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "raft/core/quorum.hpp"
#include "raft/detail/jitter_rng.hpp"
#include "test_support.hpp"

using namespace raft;

namespace {

constexpr int iterations = 20000;
constexpr std::uint64_t max_match = 10;  // small range: many ties

enum class shape { single, overlapping, disjoint };

std::uint64_t pick(raft::detail::jitter_rng& rng, std::uint64_t lo, std::uint64_t hi) {
  return rng.between(lo, hi);  // the same draws on every standard library
}

/// `n` distinct ids drawn from [lo, hi], in random order.
std::vector<node_id> distinct_ids(raft::detail::jitter_rng& rng, std::uint64_t lo, std::uint64_t hi, std::size_t n) {
  std::vector<node_id> pool;
  for (std::uint64_t v = lo; v <= hi; ++v) pool.push_back(node_id{v});
  for (std::size_t k = pool.size(); k > 1; --k) std::swap(pool[k - 1], pool[rng.below(k)]);
  pool.resize(n);
  return pool;
}

configuration random_config(raft::detail::jitter_rng& rng, shape s) {
  configuration c;
  switch (s) {
    case shape::single:
      c.voters = distinct_ids(rng, 1, 9, pick(rng, 1, 7));
      break;
    case shape::overlapping: {
      c.voters = distinct_ids(rng, 1, 9, pick(rng, 1, 7));
      c.outgoing = distinct_ids(rng, 1, 9, pick(rng, 1, 7));
      const bool overlap = std::any_of(c.outgoing.begin(), c.outgoing.end(),
                                       [&](node_id id) { return std::count(c.voters.begin(), c.voters.end(), id) > 0; });
      if (!overlap) c.outgoing[0] = c.voters[0];
      break;
    }
    case shape::disjoint:
      c.voters = distinct_ids(rng, 1, 7, pick(rng, 1, 7));
      c.outgoing = distinct_ids(rng, 11, 17, pick(rng, 1, 7));
      break;
  }
  c.learners = distinct_ids(rng, 21, 23, pick(rng, 0, 2));
  return c;
}

shape random_shape(raft::detail::jitter_rng& rng) { return static_cast<shape>(pick(rng, 0, 2)); }

std::string describe(const configuration& c) {
  std::ostringstream os;
  const auto set = [&](const char* name, const std::vector<node_id>& ids) {
    os << name << " {";
    for (node_id id : ids) os << ' ' << id;
    os << " } ";
  };
  set("voters", c.voters);
  set("outgoing", c.outgoing);
  set("learners", c.learners);
  return os.str();
}

template <class V>
std::string describe(const std::map<std::uint64_t, V>& facts) {
  std::ostringstream os;
  for (const auto& [id, v] : facts) os << id << ':' << v << ' ';
  return os.str();
}

// ---- the naive reference ---------------------------------------------------------------------

/// True if more than half of `half` stored `n` (an empty half imposes nothing).
bool majority_stored(const std::vector<node_id>& half, std::uint64_t n, const std::map<std::uint64_t, std::uint64_t>& match) {
  if (half.empty()) return true;
  std::size_t count = 0;
  for (node_id id : half)
    if (match.at(id.value) >= n) ++count;
  return 2 * count > half.size();
}

/// The highest candidate index stored by a majority of every non-empty half.
std::uint64_t naive_quorum_index(const std::vector<node_id>& voters, const std::vector<node_id>& outgoing,
                                 const std::map<std::uint64_t, std::uint64_t>& match) {
  for (std::uint64_t n = max_match + 1;; --n)
    if (majority_stored(voters, n, match) && majority_stored(outgoing, n, match)) return n;
}

/// Votes: 'y' granted, 'n' refused, '?' not answered yet.
/// Won if the grants already make a majority in every half; lost if even granting every missing
/// answer would not; pending otherwise.
vote_result naive_vote(const std::vector<node_id>& voters, const std::vector<node_id>& outgoing,
                       const std::map<std::uint64_t, char>& votes) {
  const auto wins = [&](bool count_missing_as_granted) {
    for (const auto* half : {&voters, &outgoing}) {
      if (half->empty()) continue;
      std::size_t granted = 0;
      for (node_id id : *half) {
        const char v = votes.at(id.value);
        if (v == 'y' || (v == '?' && count_missing_as_granted)) ++granted;
      }
      if (2 * granted <= half->size()) return false;
    }
    return true;
  };
  if (wins(false)) return vote_result::won;
  if (!wins(true)) return vote_result::lost;
  return vote_result::pending;
}

const char* name(vote_result r) {
  switch (r) {
    case vote_result::won: return "won";
    case vote_result::lost: return "lost";
    case vote_result::pending: return "pending";
  }
  return "?";
}

/// Tells the seed on failure (INFO) and once on stdout (test_seed).
#define RAFT_SEED_INFO(seed) INFO("seed " << (seed) << " (replay with RAFT_TEST_SEED=" << (seed) << ")")

}  // namespace

TEST_CASE("majority_index agrees with a naive count on random voter sets of 1 to 7") {
  const std::uint64_t seed = raft_test::test_seed();
  RAFT_SEED_INFO(seed);
  raft::detail::jitter_rng rng{seed};
  for (int it = 0; it < iterations; ++it) {
    const configuration c = random_config(rng, shape::single);
    std::map<std::uint64_t, std::uint64_t> match;
    for (node_id id : c.all_members()) match[id.value] = pick(rng, 0, max_match);
    INFO("iteration " << it << ": " << describe(c) << "match " << describe(match));

    const index_t got = majority_index(c.voters, [&](node_id id) { return index_t{match.at(id.value)}; });

    REQUIRE(got == index_t{naive_quorum_index(c.voters, {}, match)});
  }
}

TEST_CASE("quorum_index agrees with a naive count on random single and joint configurations") {
  const std::uint64_t seed = raft_test::test_seed();
  RAFT_SEED_INFO(seed);
  raft::detail::jitter_rng rng{seed};
  std::map<shape, int> limited_by_outgoing;  // joint cases where the old half is the binding one
  std::map<shape, int> limited_by_voters;
  for (int it = 0; it < iterations; ++it) {
    const shape s = random_shape(rng);
    const configuration c = random_config(rng, s);
    std::map<std::uint64_t, std::uint64_t> match;
    for (node_id id : c.all_members()) match[id.value] = pick(rng, 0, max_match);
    // Learners store everything: they must not make anything committed.
    for (node_id id : c.learners) match[id.value] = max_match;
    INFO("iteration " << it << ": " << describe(c) << "match " << describe(match));

    const index_t got = quorum_index(c, [&](node_id id) { return index_t{match.at(id.value)}; });

    const std::uint64_t expected = naive_quorum_index(c.voters, c.outgoing, match);
    REQUIRE(got == index_t{expected});
    if (c.joint()) {
      if (naive_quorum_index(c.voters, {}, match) > expected) ++limited_by_outgoing[s];
      if (naive_quorum_index(c.outgoing, {}, match) > expected) ++limited_by_voters[s];
    }
  }
  // The generator exercised joint configurations where either half is the one holding back.
  CHECK(limited_by_outgoing[shape::overlapping] > 0);
  CHECK(limited_by_outgoing[shape::disjoint] > 0);
  CHECK(limited_by_voters[shape::overlapping] > 0);
  CHECK(limited_by_voters[shape::disjoint] > 0);
}

TEST_CASE("majority_vote and quorum_vote agree with a naive count on random votes") {
  const std::uint64_t seed = raft_test::test_seed();
  RAFT_SEED_INFO(seed);
  raft::detail::jitter_rng rng{seed};
  std::map<vote_result, int> joint_outcomes;
  int joint_split = 0;  // joint cases where the two halves alone would decide differently
  for (int it = 0; it < iterations; ++it) {
    const shape s = random_shape(rng);
    const configuration c = random_config(rng, s);
    std::map<std::uint64_t, char> votes;
    for (node_id id : c.all_members()) votes[id.value] = "yn?"[pick(rng, 0, 2)];
    INFO("iteration " << it << ": " << describe(c) << "votes " << describe(votes));
    const auto vote_of = [&](node_id id) -> std::optional<bool> {
      const char v = votes.at(id.value);
      if (v == '?') return std::nullopt;
      return v == 'y';
    };

    const vote_result single = majority_vote(c.voters, vote_of);
    const vote_result joint = quorum_vote(c, vote_of);

    const vote_result expected_single = naive_vote(c.voters, {}, votes);
    const vote_result expected_joint = naive_vote(c.voters, c.outgoing, votes);
    INFO("majority_vote " << name(single) << ", expected " << name(expected_single));
    INFO("quorum_vote " << name(joint) << ", expected " << name(expected_joint));
    REQUIRE(single == expected_single);
    REQUIRE(joint == expected_joint);
    if (c.joint()) {
      ++joint_outcomes[joint];
      if (expected_single != naive_vote(c.outgoing, {}, votes)) ++joint_split;
    }
  }
  CHECK(joint_outcomes[vote_result::won] > 0);
  CHECK(joint_outcomes[vote_result::lost] > 0);
  CHECK(joint_outcomes[vote_result::pending] > 0);
  CHECK(joint_split > 0);
}

TEST_CASE("an empty outgoing half never limits the quorum index or the vote") {
  const std::uint64_t seed = raft_test::test_seed();
  RAFT_SEED_INFO(seed);
  raft::detail::jitter_rng rng{seed};
  for (int it = 0; it < 2000; ++it) {
    const configuration c = random_config(rng, shape::single);
    std::map<std::uint64_t, std::uint64_t> match;
    std::map<std::uint64_t, char> votes;
    for (node_id id : c.all_members()) {
      match[id.value] = pick(rng, 0, max_match);
      votes[id.value] = "yn?"[pick(rng, 0, 2)];
    }
    INFO("iteration " << it << ": " << describe(c) << "match " << describe(match) << "votes " << describe(votes));
    const auto match_of = [&](node_id id) { return index_t{match.at(id.value)}; };
    const auto vote_of = [&](node_id id) -> std::optional<bool> {
      if (votes.at(id.value) == '?') return std::nullopt;
      return votes.at(id.value) == 'y';
    };
    REQUIRE(quorum_index(c, match_of) == majority_index(c.voters, match_of));
    REQUIRE(quorum_vote(c, vote_of) == majority_vote(c.voters, vote_of));
  }
}
