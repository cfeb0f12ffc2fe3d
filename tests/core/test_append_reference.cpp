// Property tests: decide_append and next_index_after_rejection (rules.hpp) against a naive
// reference, on random leader/follower logs produced by a small simulation of Raft histories
// (so the Log Matching property holds, as it does between real Raft logs).
//
// Replay a failure with RAFT_TEST_SEED=<seed printed by the run>.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "raft/core/rules.hpp"
#include "raft/detail/jitter_rng.hpp"
#include "test_support.hpp"

using namespace raft;
using raft_test::make_entry;

namespace {

constexpr int scenarios = 5000;
constexpr int requests_per_scenario = 6;

/// A full log as its terms: terms[i - 1] is the term of the entry at index i.
using terms = std::vector<std::uint64_t>;

std::uint64_t pick(raft::detail::jitter_rng& rng, std::uint64_t lo, std::uint64_t hi) {
  return rng.between(lo, hi);  // the same draws on every standard library
}
bool coin(raft::detail::jitter_rng& rng) { return pick(rng, 0, 1) == 1; }

std::uint64_t term_at(const terms& log, std::uint64_t i) { return i == 0 ? 0 : log[i - 1]; }

/// Length of the longest common prefix.
std::uint64_t common_prefix(const terms& a, const terms& b) {
  std::uint64_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

/// Three nodes live through a few terms. Each term one of them leads: it appends a few entries
/// of that term, then replicates some prefix of its log to some others the way AppendEntries
/// would (a follower that already holds that prefix keeps its log, any other ends up with exactly
/// the prefix). Terms never decrease along a log and Log Matching holds between any two logs.
std::array<terms, 3> random_histories(raft::detail::jitter_rng& rng) {
  std::array<terms, 3> logs;
  const std::uint64_t last_term = pick(rng, 1, 6);
  for (std::uint64_t t = 1; t <= last_term; ++t) {
    terms& leader = logs[pick(rng, 0, 2)];
    for (std::uint64_t n = pick(rng, 0, 4); n > 0; --n) leader.push_back(t);
    for (terms& other : logs) {
      if (&other == &leader || !coin(rng)) continue;
      const std::uint64_t j = pick(rng, 0, leader.size());
      const bool holds_prefix = other.size() >= j && std::equal(leader.begin(), leader.begin() + j, other.begin());
      if (!holds_prefix) other.assign(leader.begin(), leader.begin() + j);
    }
  }
  return logs;
}

bool log_matching_holds(const terms& a, const terms& b) {
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (a[i] == b[i] && !std::equal(a.begin(), a.begin() + i + 1, b.begin())) return false;
  return true;
}

/// The in_memory_log of `log`, compacted through `base`.
in_memory_log view_of(const terms& log, std::uint64_t base) {
  in_memory_log v{index_t{base}, term_t{term_at(log, base)}};
  for (std::uint64_t i = base + 1; i <= log.size(); ++i) v.append(make_entry(i, log[i - 1]));
  return v;
}

std::string describe(const terms& log) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < log.size(); ++i) os << (i ? " " : "") << log[i];
  os << ']';
  return os.str();
}

append_request request_from(const terms& leader, std::uint64_t prev, std::uint64_t count, std::uint64_t leader_commit) {
  append_request r{term_t{99}, index_t{prev}, term_t{term_at(leader, prev)}, index_t{leader_commit}, {}};
  for (std::uint64_t i = prev + 1; i <= prev + count; ++i) r.entries.push_back(make_entry(i, leader[i - 1]));
  return r;
}

// ---- the naive reference ---------------------------------------------------------------------

/// Figure 3.1 step by step, one entry at a time: an entry we hold with the same term is kept; at
/// the first one with another term, it and all that follow are deleted; missing ones are appended.
terms naive_apply(terms follower, const append_request& r) {
  for (const log_entry& e : r.entries) {
    const std::uint64_t i = e.index.value;
    if (i <= follower.size()) {
      if (follower[i - 1] == e.term.value) continue;
      follower.resize(i - 1);
    }
    follower.push_back(e.term.value);
  }
  return follower;
}

std::uint64_t naive_first_index_of_term(const terms& log, std::uint64_t t) {
  for (std::uint64_t i = 1; i <= log.size(); ++i)
    if (log[i - 1] == t) return i;
  return 0;
}

/// Carries out an accepted decision on a copy of `log`, checking each step is possible.
in_memory_log apply(in_memory_log log, const append_request& r, const append_decision& d) {
  if (d.truncate_after) {
    REQUIRE(*d.truncate_after >= log.first_index().prev());
    log.truncate_after(*d.truncate_after);
  }
  REQUIRE(d.first_new <= r.entries.size());
  for (std::size_t k = d.first_new; k < r.entries.size(); ++k) {
    REQUIRE(r.entries[k].index == log.last_index().next());
    REQUIRE(r.entries[k].term >= log.last_term());
    log.append(r.entries[k]);
  }
  return log;
}

#define RAFT_SEED_INFO(seed) INFO("seed " << (seed) << " (replay with RAFT_TEST_SEED=" << (seed) << ")")

}  // namespace

TEST_CASE("the history generator keeps terms non-decreasing and Log Matching true") {
  const std::uint64_t seed = raft_test::test_seed();
  RAFT_SEED_INFO(seed);
  raft::detail::jitter_rng rng{seed};
  std::uint64_t diverged = 0;
  for (int s = 0; s < scenarios; ++s) {
    const auto logs = random_histories(rng);
    for (const terms& a : logs) {
      REQUIRE(std::is_sorted(a.begin(), a.end()));
      for (const terms& b : logs) {
        REQUIRE(log_matching_holds(a, b));
        if (common_prefix(a, b) < std::min(a.size(), b.size())) ++diverged;
      }
    }
  }
  CHECK(diverged > scenarios / 10);  // conflicting suffixes are common, not a corner case
}

TEST_CASE("decide_append agrees with a naive entry-by-entry reference on random logs") {
  const std::uint64_t seed = raft_test::test_seed();
  RAFT_SEED_INFO(seed);
  raft::detail::jitter_rng rng{seed};
  int accepted = 0, rejected = 0, truncated = 0, compacted = 0, stale = 0, below_base = 0;

  for (int s = 0; s < scenarios; ++s) {
    const auto logs = random_histories(rng);
    const std::uint64_t li = pick(rng, 0, 2);
    const std::uint64_t fi = (li + pick(rng, 1, 2)) % 3;
    const terms& leader = logs[li];
    const terms& follower = logs[fi];
    const std::uint64_t m = common_prefix(leader, follower);  // entries known to match
    // Committed entries are in every later leader's log, so the follower's commit is within m;
    // it may have compacted through any committed index.
    const std::uint64_t our_commit = pick(rng, 0, m);
    const std::uint64_t base = coin(rng) ? pick(rng, 0, our_commit) : 0;
    const in_memory_log fview = view_of(follower, base);
    if (base > 0) ++compacted;

    for (int q = 0; q < requests_per_scenario; ++q) {
      const std::uint64_t prev = pick(rng, 0, leader.size());
      const std::uint64_t count = pick(rng, 0, leader.size() - prev);
      const std::uint64_t leader_commit = pick(rng, 0, leader.size());
      const append_request r = request_from(leader, prev, count, leader_commit);
      const std::uint64_t last_new = prev + count;
      INFO("scenario " << s << " request " << q << ": leader " << describe(leader) << ", follower "
                       << describe(follower) << " compacted through " << base << ", commit " << our_commit
                       << "; request prev " << prev << " (term " << term_at(leader, prev) << "), " << count
                       << " entries, leader commit " << leader_commit);

      const append_decision d = decide_append(fview, r, index_t{our_commit});

      // Accept iff the follower has an entry at prev with the leader's term there.
      const bool expect_accept = prev <= follower.size() && term_at(follower, prev) == term_at(leader, prev);
      REQUIRE(d.accept == expect_accept);
      if (!d.accept) {
        ++rejected;
        if (prev > follower.size()) {
          CHECK(d.conflict_term == term_t{0});
          CHECK(d.conflict_index == index_t{follower.size() + 1});
        } else {
          const std::uint64_t t = follower[prev - 1];
          CHECK(d.conflict_term == term_t{t});
          // The first index of that term, or the compaction base if the term runs into it.
          CHECK(d.conflict_index == index_t{std::max(naive_first_index_of_term(follower, t), base)});
        }
        continue;
      }
      ++accepted;
      if (last_new <= m) ++stale;
      if (prev < base) ++below_base;
      if (d.truncate_after) ++truncated;

      const terms expected = naive_apply(follower, r);
      const in_memory_log after = apply(fview, r, d);

      // Same log as the reference, entry for entry.
      REQUIRE(after.last_index() == index_t{expected.size()});
      for (std::uint64_t i = base + 1; i <= expected.size(); ++i) REQUIRE(after.at(index_t{i}) == make_entry(i, expected[i - 1]));
      // The follower now matches the leader through the last new entry...
      for (std::uint64_t i = base + 1; i <= last_new; ++i) CHECK(after.at(index_t{i}) == make_entry(i, leader[i - 1]));
      // ...and no entry that matched the leader was removed or changed.
      for (std::uint64_t i = base + 1; i <= m; ++i) CHECK(after.at(index_t{i}) == make_entry(i, follower[i - 1]));
      // Truncation happens exactly at the first conflicting entry of the request, if there is one.
      std::uint64_t first_conflict = 0;
      for (std::uint64_t i = prev + 1; i <= std::min<std::uint64_t>(last_new, follower.size()); ++i)
        if (follower[i - 1] != leader[i - 1]) {
          first_conflict = i;
          break;
        }
      if (first_conflict == 0) {
        CHECK_FALSE(d.truncate_after.has_value());
        CHECK(after.last_index() >= index_t{follower.size()});  // nothing removed
      } else {
        REQUIRE(d.truncate_after.has_value());
        CHECK(*d.truncate_after == index_t{first_conflict - 1});
      }
      CHECK(d.last_new == index_t{last_new});
      CHECK(d.commit == index_t{std::max(our_commit, std::min(leader_commit, last_new))});
      CHECK(d.commit >= index_t{our_commit});
      CHECK(d.commit <= after.last_index());
    }
  }
  // Every kind of situation was exercised.
  CHECK(accepted > scenarios);
  CHECK(rejected > scenarios / 2);
  CHECK(truncated > scenarios / 20);
  CHECK(compacted > scenarios / 50);
  CHECK(below_base > scenarios / 50);
  CHECK(stale > scenarios / 5);
}

TEST_CASE("next_index_after_rejection stays within [match + 1, rejected index] for any response") {
  const std::uint64_t seed = raft_test::test_seed();
  RAFT_SEED_INFO(seed);
  raft::detail::jitter_rng rng{seed};
  for (int s = 0; s < scenarios; ++s) {
    const auto logs = random_histories(rng);
    const terms& leader = logs[pick(rng, 0, 2)];
    const in_memory_log lview = view_of(leader, 0);
    for (int q = 0; q < requests_per_scenario; ++q) {
      // Arbitrary, possibly stale or reordered, rejection.
      const std::uint64_t limit = leader.size() + 3;
      const append_response r{term_t{9}, false, index_t{0}, index_t{pick(rng, 0, limit)}, index_t{pick(rng, 0, limit)},
                              term_t{pick(rng, 0, 7)}};
      const std::uint64_t match = pick(rng, 0, limit);
      INFO("scenario " << s << ": leader " << describe(leader) << ", rejected " << r.rejected_index << ", conflict index "
                       << r.conflict_index << ", conflict term " << r.conflict_term << ", match " << match);

      const index_t next = next_index_after_rejection(lview, r, index_t{match});

      CHECK(next >= index_t{match + 1});
      if (match < r.rejected_index.value)
        CHECK(next <= r.rejected_index);
      else
        CHECK(next == index_t{match + 1});  // a stale rejection: stay just past what is known
    }
  }
}

TEST_CASE("rejection and retry converge on the match point, skipping whole conflicting terms") {
  const std::uint64_t seed = raft_test::test_seed();
  RAFT_SEED_INFO(seed);
  raft::detail::jitter_rng rng{seed};
  std::uint64_t fast_total = 0, one_per_entry_total = 0;
  int strictly_faster = 0;

  for (int s = 0; s < scenarios; ++s) {
    const auto logs = random_histories(rng);
    const std::uint64_t li = pick(rng, 0, 2);
    const terms& leader = logs[li];
    const terms& follower = logs[(li + pick(rng, 1, 2)) % 3];
    const std::uint64_t m = common_prefix(leader, follower);
    const std::uint64_t our_commit = pick(rng, 0, m);
    const std::uint64_t base = coin(rng) ? pick(rng, 0, our_commit) : 0;
    const in_memory_log lview = view_of(leader, 0);
    const in_memory_log fview = view_of(follower, base);
    const std::uint64_t match = pick(rng, 0, m);  // what the leader already knows to match
    const std::set<std::uint64_t> conflicting_terms(follower.begin() + static_cast<std::ptrdiff_t>(m), follower.end());
    INFO("scenario " << s << ": leader " << describe(leader) << ", follower " << describe(follower)
                     << " compacted through " << base << ", known match " << match << ", true match " << m);

    // The leader probes from its log end, as a new leader does.
    std::uint64_t next = leader.size() + 1;
    std::uint64_t rejections = 0;
    for (;;) {
      const std::uint64_t prev = next - 1;
      INFO("probe " << rejections << " at prev " << prev);
      const append_decision d = decide_append(fview, request_from(leader, prev, 0, 0), index_t{our_commit});
      if (d.accept) {
        CHECK(prev == m);  // neither past the true match point nor below it
        break;
      }
      ++rejections;
      const append_response r{term_t{9}, false, index_t{0}, index_t{prev}, d.conflict_index, d.conflict_term};
      const index_t n = next_index_after_rejection(lview, r, index_t{match});
      REQUIRE(n >= index_t{match + 1});
      REQUIRE(n <= index_t{prev});  // every rejection makes progress
      next = n.value;
    }
    // Never slower than stepping back one entry per rejection, and at most one rejection per
    // conflicting follower term (plus one to come back from beyond a short log).
    const std::uint64_t one_per_entry = leader.size() - m;
    CHECK(rejections <= one_per_entry);
    CHECK(rejections <= conflicting_terms.size() + 1);
    fast_total += rejections;
    one_per_entry_total += one_per_entry;
    if (rejections < one_per_entry) ++strictly_faster;
  }
  INFO("fast backtracking took " << fast_total << " rejections, one per entry would take " << one_per_entry_total);
  CHECK(5 * fast_total < 3 * one_per_entry_total);  // typically about 0.45 of it
  CHECK(strictly_faster > scenarios / 10);
}

TEST_CASE("a follower with a long run of one conflicting term is repaired in two rejections") {
  // Common prefix [1, 1]; the follower then got 50 entries of term 2 that never committed, while
  // the leader went on in term 3.
  terms follower{1, 1};
  follower.insert(follower.end(), 50, 2);
  terms leader{1, 1};
  leader.insert(leader.end(), 60, 3);
  const in_memory_log lview = view_of(leader, 0);
  const in_memory_log fview = view_of(follower, 0);

  std::uint64_t next = leader.size() + 1;
  int rejections = 0;
  for (; rejections < 100; ++rejections) {
    const append_decision d = decide_append(fview, request_from(leader, next - 1, 0, 0), index_t{0});
    if (d.accept) break;
    const append_response r{term_t{3}, false, index_t{0}, index_t{next - 1}, d.conflict_index, d.conflict_term};
    next = next_index_after_rejection(lview, r, index_t{0}).value;
  }
  CHECK(next - 1 == 2);
  CHECK(rejections == 2);  // once for the follower's log end, once for its whole term 2
}
