// Tests for raft/core/rules.hpp: the protocol's decisions, pinned on the rules that are easy to get
// wrong. Section numbers refer to Ongaro's dissertation.
#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <vector>

#include "raft/core/rules.hpp"
#include "test_support.hpp"

using namespace raft;
using raft_test::ids;
using raft_test::make_entry;
using raft_test::make_log;

namespace {

/// An AppendEntries request carrying the given leader entries (index, term) after prev.
append_request request(std::uint64_t prev_index, std::uint64_t prev_term, std::uint64_t leader_commit,
                       std::initializer_list<std::pair<std::uint64_t, std::uint64_t>> entries = {}) {
  append_request r{term_t{9}, index_t{prev_index}, term_t{prev_term}, index_t{leader_commit}, {}};
  for (auto [index, term] : entries) r.entries.push_back(make_entry(index, term));
  return r;
}

/// Carries out an accepted decision on a copy of `log`, as the node would.
in_memory_log apply(in_memory_log log, const append_request& r, const append_decision& d) {
  REQUIRE(d.accept);
  if (d.truncate_after) log.truncate_after(*d.truncate_after);
  for (std::size_t k = d.first_new; k < r.entries.size(); ++k) log.append(r.entries[k]);
  return log;
}

std::vector<std::uint64_t> terms_of(const in_memory_log& log) {
  std::vector<std::uint64_t> out;
  for (index_t i = log.first_index(); i <= log.last_index(); i = i.next()) out.push_back(log.at(i).term.value);
  return out;
}

voter_state voter(std::uint64_t current_term, std::uint64_t voted_for, std::uint64_t last_log_term,
                  std::uint64_t last_log_index, bool leader_is_alive = false) {
  return voter_state{term_t{current_term}, node_id{voted_for}, term_t{last_log_term}, index_t{last_log_index},
                     leader_is_alive};
}

vote_request vote(std::uint64_t term, std::uint64_t last_log_term, std::uint64_t last_log_index,
                  bool pre_vote = false) {
  return vote_request{term_t{term}, index_t{last_log_index}, term_t{last_log_term}, pre_vote};
}

}  // namespace

// ---- log_is_up_to_date (§3.6.1) -------------------------------------------------------------

TEST_CASE("a log whose last term is higher is up to date even if it is shorter") {
  CHECK(log_is_up_to_date(term_t{3}, index_t{2}, term_t{2}, index_t{100}));
}

TEST_CASE("a longer log whose last term is older is not up to date") {
  CHECK_FALSE(log_is_up_to_date(term_t{2}, index_t{100}, term_t{3}, index_t{2}));
}

TEST_CASE("with equal last terms the longer or equally long log is up to date") {
  CHECK(log_is_up_to_date(term_t{3}, index_t{7}, term_t{3}, index_t{5}));
  CHECK(log_is_up_to_date(term_t{3}, index_t{5}, term_t{3}, index_t{5}));
  CHECK_FALSE(log_is_up_to_date(term_t{3}, index_t{4}, term_t{3}, index_t{5}));
}

TEST_CASE("an empty log is up to date only against another empty log") {
  CHECK(log_is_up_to_date(term_t{0}, index_t{0}, term_t{0}, index_t{0}));
  CHECK_FALSE(log_is_up_to_date(term_t{0}, index_t{0}, term_t{1}, index_t{1}));
  CHECK(log_is_up_to_date(term_t{1}, index_t{1}, term_t{0}, index_t{0}));
}

// ---- should_grant_vote: RequestVote (§3.4) ---------------------------------------------------

TEST_CASE("a vote is granted for the current term to an up-to-date candidate when none was given") {
  CHECK(should_grant_vote(voter(5, 0, 4, 10), vote(5, 4, 10), node_id{2}));
}

TEST_CASE("a vote is given once per term: another candidate is refused, the same one granted again") {
  const voter_state s = voter(5, 2, 4, 10);  // already voted for node 2 in term 5
  CHECK_FALSE(should_grant_vote(s, vote(5, 4, 10), node_id{3}));
  CHECK_FALSE(should_grant_vote(s, vote(5, 9, 99), node_id{3}));  // even with a better log
  CHECK(should_grant_vote(s, vote(5, 4, 10), node_id{2}));        // a retransmitted request
}

TEST_CASE("a vote request for any term other than the current one is refused") {
  const voter_state s = voter(5, 0, 4, 10);
  CHECK_FALSE(should_grant_vote(s, vote(4, 4, 10), node_id{2}));  // stale candidate
  CHECK_FALSE(should_grant_vote(s, vote(6, 4, 10), node_id{2}));  // caller must adopt the term first
}

TEST_CASE("a vote is refused to a candidate whose log is behind, however long it is") {
  CHECK_FALSE(should_grant_vote(voter(5, 0, 4, 10), vote(5, 3, 50), node_id{2}));
  CHECK_FALSE(should_grant_vote(voter(5, 0, 4, 10), vote(5, 4, 9), node_id{2}));
  // Refusing does not depend on having voted: the same state grants an up-to-date candidate.
  CHECK(should_grant_vote(voter(5, 0, 4, 10), vote(5, 5, 1), node_id{2}));
}

TEST_CASE("a real vote does not depend on leader liveness, which only the pre-vote checks") {
  CHECK(should_grant_vote(voter(5, 0, 4, 10, true), vote(5, 4, 10), node_id{2}));
}

// ---- should_grant_vote: PreVote (§9.6) -------------------------------------------------------

TEST_CASE("a pre-vote is granted for a higher term, an up-to-date log and no live leader") {
  CHECK(should_grant_vote(voter(5, 0, 4, 10), vote(6, 4, 10, true), node_id{2}));
}

TEST_CASE("a pre-vote is refused for the current or an older term") {
  CHECK_FALSE(should_grant_vote(voter(5, 0, 4, 10), vote(5, 4, 10, true), node_id{2}));
  CHECK_FALSE(should_grant_vote(voter(5, 0, 4, 10), vote(4, 4, 10, true), node_id{2}));
}

TEST_CASE("a pre-vote is refused while a leader is known to be alive") {
  CHECK_FALSE(should_grant_vote(voter(5, 0, 4, 10, true), vote(6, 4, 10, true), node_id{2}));
}

TEST_CASE("a pre-vote is refused to a candidate whose log is behind") {
  CHECK_FALSE(should_grant_vote(voter(5, 0, 4, 10), vote(6, 3, 20, true), node_id{2}));
  CHECK_FALSE(should_grant_vote(voter(5, 0, 4, 10), vote(6, 4, 9, true), node_id{2}));
}

TEST_CASE("a pre-vote ignores the real vote already given in the current term") {
  // Voted for 3 in term 5: a pre-vote for term 6 by node 2 is still granted...
  const voter_state s = voter(5, 3, 4, 10);
  const vote_request pre = vote(6, 4, 10, true);
  CHECK(should_grant_vote(s, pre, node_id{2}));
  // ...and asking changes nothing: the same question gets the same answer, the real vote in the
  // current term is still refused to node 2 and still granted to node 3.
  CHECK(should_grant_vote(s, pre, node_id{2}));
  CHECK_FALSE(should_grant_vote(s, vote(5, 4, 10), node_id{2}));
  CHECK(should_grant_vote(s, vote(5, 4, 10), node_id{3}));
}

// ---- decide_append (§3.5, Figure 3.1) --------------------------------------------------------

TEST_CASE("a heartbeat whose previous entry matches is accepted and changes no entry") {
  const in_memory_log log = make_log({1, 1, 2});
  const append_request r = request(3, 2, 0);
  const append_decision d = decide_append(log, r, index_t{0});
  CHECK(d.accept);
  CHECK_FALSE(d.truncate_after.has_value());
  CHECK(d.first_new == 0);
  CHECK(d.last_new == index_t{3});
  CHECK(terms_of(apply(log, r, d)) == terms_of(log));
}

TEST_CASE("a request from the start of the log always matches") {
  const in_memory_log log = make_log({1, 1});
  const append_request r = request(0, 0, 0, {{1, 1}, {2, 1}, {3, 2}});
  const append_decision d = decide_append(log, r, index_t{0});
  REQUIRE(d.accept);
  CHECK(terms_of(apply(log, r, d)) == std::vector<std::uint64_t>{1, 1, 2});
}

TEST_CASE("new entries after the matching previous entry are appended") {
  const in_memory_log log = make_log({1, 1});
  const append_request r = request(2, 1, 0, {{3, 2}, {4, 2}});
  const append_decision d = decide_append(log, r, index_t{0});
  REQUIRE(d.accept);
  CHECK_FALSE(d.truncate_after.has_value());
  CHECK(d.first_new == 0);
  CHECK(d.last_new == index_t{4});
  CHECK(terms_of(apply(log, r, d)) == std::vector<std::uint64_t>{1, 1, 2, 2});
}

TEST_CASE("a request is rejected when the log has no entry at prev_log_index") {
  const in_memory_log log = make_log({1, 1, 2});
  const append_decision d = decide_append(log, request(5, 2, 0, {{6, 2}}), index_t{0});
  CHECK_FALSE(d.accept);
  CHECK(d.conflict_term == term_t{0});
  CHECK(d.conflict_index == index_t{4});  // our last index + 1
}

TEST_CASE("a request is rejected when the entry at prev_log_index has another term") {
  const in_memory_log log = make_log({1, 1, 2, 2, 2});
  const append_decision d = decide_append(log, request(4, 3, 0, {{5, 3}}), index_t{0});
  CHECK_FALSE(d.accept);
  CHECK(d.conflict_term == term_t{2});    // our term at prev_log_index
  CHECK(d.conflict_index == index_t{3});  // first index of that term in our log
}

TEST_CASE("a stale or duplicated request never truncates entries that match") {
  // The follower already holds 1..5; an old request carrying 2..3 arrives late.
  const in_memory_log log = make_log({1, 1, 2, 2, 2});
  const append_request stale = request(1, 1, 0, {{2, 1}, {3, 2}});
  const append_decision d = decide_append(log, stale, index_t{0});
  REQUIRE(d.accept);
  CHECK_FALSE(d.truncate_after.has_value());
  CHECK(d.first_new == 2);  // nothing to append
  CHECK(d.last_new == index_t{3});
  CHECK(terms_of(apply(log, stale, d)) == std::vector<std::uint64_t>{1, 1, 2, 2, 2});

  // Replaying the very request that produced the log changes nothing either.
  const append_request duplicate = request(0, 0, 0, {{1, 1}, {2, 1}, {3, 2}, {4, 2}, {5, 2}});
  const append_decision again = decide_append(log, duplicate, index_t{0});
  REQUIRE(again.accept);
  CHECK_FALSE(again.truncate_after.has_value());
  CHECK(terms_of(apply(log, duplicate, again)) == std::vector<std::uint64_t>{1, 1, 2, 2, 2});
}

TEST_CASE("truncation starts at the first conflicting entry, not at prev_log_index") {
  // Index 2 matches (term 1); index 3 is the first conflict (ours 2, leader's 3).
  const in_memory_log log = make_log({1, 1, 2, 2});
  const append_request r = request(1, 1, 0, {{2, 1}, {3, 3}, {4, 3}});
  const append_decision d = decide_append(log, r, index_t{0});
  REQUIRE(d.accept);
  REQUIRE(d.truncate_after.has_value());
  CHECK(*d.truncate_after == index_t{2});
  CHECK(d.first_new == 1);
  CHECK(terms_of(apply(log, r, d)) == std::vector<std::uint64_t>{1, 1, 3, 3});
}

TEST_CASE("a conflict removes our later entries even beyond the request") {
  const in_memory_log log = make_log({1, 2, 2, 2, 2});
  const append_request r = request(1, 1, 0, {{2, 3}});
  const append_decision d = decide_append(log, r, index_t{0});
  REQUIRE(d.accept);
  CHECK(d.truncate_after == index_t{1});
  CHECK(terms_of(apply(log, r, d)) == std::vector<std::uint64_t>{1, 3});
}

TEST_CASE("the commit index is the smaller of the leader's commit and the last new entry") {
  const in_memory_log log = make_log({1, 1, 1, 1, 1, 1});
  // The leader has committed further than this request reaches: stop at the last new entry,
  // even though our log holds more entries (they are not known to match the leader's).
  CHECK(decide_append(log, request(1, 1, 10, {{2, 1}, {3, 1}}), index_t{0}).commit == index_t{3});
  CHECK(decide_append(log, request(2, 1, 10), index_t{0}).commit == index_t{2});
  // The leader has committed less than the request carries.
  CHECK(decide_append(log, request(1, 1, 2, {{2, 1}, {3, 1}, {4, 1}}), index_t{0}).commit == index_t{2});
}

TEST_CASE("the commit index is never lowered") {
  const in_memory_log log = make_log({1, 1, 1, 1, 1, 1});
  // A stale request whose leader commit and last new entry are both below our commit.
  const append_decision d = decide_append(log, request(1, 1, 1, {{2, 1}}), index_t{5});
  REQUIRE(d.accept);
  CHECK(d.commit == index_t{5});
}

TEST_CASE("entries at or before the compaction base are committed and skipped") {
  // Compacted through 10 (term 2); we hold 11 (term 2).
  const in_memory_log log = make_log(10, 2, {2});
  const append_request r = request(8, 2, 12, {{9, 2}, {10, 2}, {11, 2}, {12, 3}});
  const append_decision d = decide_append(log, r, index_t{10});
  REQUIRE(d.accept);  // prev 8 is compacted, hence known to match
  CHECK_FALSE(d.truncate_after.has_value());
  CHECK(d.first_new == 3);
  CHECK(d.last_new == index_t{12});
  CHECK(d.commit == index_t{12});
  const in_memory_log after = apply(log, r, d);
  CHECK(after.last_index() == index_t{12});
  CHECK(after.at(index_t{12}) == make_entry(12, 3));
}

TEST_CASE("a request whose previous entry is the compaction base is checked against its term") {
  const in_memory_log log{index_t{10}, term_t{2}};
  CHECK(decide_append(log, request(10, 2, 0, {{11, 3}}), index_t{10}).accept);
  CHECK_FALSE(decide_append(log, request(11, 3, 0), index_t{10}).accept);
  CHECK_FALSE(decide_append(log, request(10, 1, 0, {{11, 3}}), index_t{10}).accept);
}

// ---- next_index_after_rejection (fast backtracking) ------------------------------------------

namespace {
append_response rejection(std::uint64_t rejected, std::uint64_t conflict_index, std::uint64_t conflict_term) {
  return append_response{term_t{9}, false, index_t{0}, index_t{rejected}, index_t{conflict_index},
                         term_t{conflict_term}};
}
}  // namespace

TEST_CASE("after a rejection from a short log the leader resumes at the follower's log end") {
  const in_memory_log leader = make_log({1, 1, 2, 2, 3, 3, 3});
  CHECK(next_index_after_rejection(leader, rejection(7, 3, 0), index_t{0}) == index_t{3});
}

TEST_CASE("when the leader has the conflicting term it resumes after its own last entry of that term") {
  // Follower has term 2 at 5 (2 from index 3); the leader's term 2 ends at 4.
  const in_memory_log leader = make_log({1, 1, 2, 2, 3, 3, 3});
  CHECK(next_index_after_rejection(leader, rejection(5, 3, 2), index_t{0}) == index_t{5});
}

TEST_CASE("when the leader lacks the conflicting term it skips the follower's whole term") {
  // Follower has term 4 from index 3 to 6; the leader never had term 4.
  const in_memory_log leader = make_log({1, 1, 2, 2, 5, 5, 5});
  CHECK(next_index_after_rejection(leader, rejection(6, 3, 4), index_t{0}) == index_t{3});
}

TEST_CASE("the next index never passes the rejected index nor falls to the known match") {
  const in_memory_log leader = make_log({1, 1, 2, 2, 2, 2, 2});
  // The leader's term 2 ends at 7, after the rejected index 4: stay at or before 4.
  CHECK(next_index_after_rejection(leader, rejection(4, 3, 2), index_t{0}) == index_t{4});
  // A hint below what is known to match (stale rejection) cannot move next to or below match.
  CHECK(next_index_after_rejection(leader, rejection(6, 1, 0), index_t{4}) == index_t{5});
  CHECK(next_index_after_rejection(leader, rejection(3, 1, 0), index_t{4}) == index_t{5});
}

// ---- leader_commit_index (§3.6.2, Figure 3.7) ------------------------------------------------

TEST_CASE("an entry from an older term is not committed by counting replicas (Figure 8)") {
  // Leader in term 4 holds [1, 2]; entry 2 (term 2) is on a majority of five servers.
  const in_memory_log log = make_log({1, 2});
  const std::map<std::uint64_t, std::uint64_t> match{{1, 2}, {2, 2}, {3, 2}, {4, 1}, {5, 1}};
  const configuration c{ids({1, 2, 3, 4, 5}), {}, {}};
  const auto match_of = [&](node_id id) { return index_t{match.at(id.value)}; };
  CHECK(leader_commit_index(c, match_of, log, term_t{4}, index_t{1}) == index_t{1});
}

TEST_CASE("an entry from the current term commits once on a majority, and carries the earlier ones") {
  const in_memory_log log = make_log({1, 2, 4});
  const configuration c{ids({1, 2, 3, 4, 5}), {}, {}};
  std::map<std::uint64_t, std::uint64_t> match{{1, 3}, {2, 3}, {3, 2}, {4, 1}, {5, 1}};
  const auto match_of = [&](node_id id) { return index_t{match.at(id.value)}; };
  // Only two of five store entry 3: nothing new is committed, not even entry 2 on three.
  CHECK(leader_commit_index(c, match_of, log, term_t{4}, index_t{1}) == index_t{1});
  // A third server stores entry 3: it commits, and entry 2 with it.
  match[3] = 3;
  CHECK(leader_commit_index(c, match_of, log, term_t{4}, index_t{1}) == index_t{3});
}

TEST_CASE("the leader's commit index is never lowered") {
  const in_memory_log log = make_log({1, 2, 2});
  const configuration c{ids({1, 2, 3}), {}, {}};
  const std::map<std::uint64_t, std::uint64_t> match{{1, 3}, {2, 1}, {3, 1}};
  const auto match_of = [&](node_id id) { return index_t{match.at(id.value)}; };
  CHECK(leader_commit_index(c, match_of, log, term_t{2}, index_t{2}) == index_t{2});
}

TEST_CASE("during joint consensus the leader commits only what both halves store") {
  const in_memory_log log = make_log({1, 3, 3});
  const configuration c{ids({1, 2, 3}), ids({1, 4, 5}), {}};
  std::map<std::uint64_t, std::uint64_t> match{{1, 3}, {2, 3}, {3, 3}, {4, 1}, {5, 1}};
  const auto match_of = [&](node_id id) { return index_t{match.at(id.value)}; };
  CHECK(leader_commit_index(c, match_of, log, term_t{3}, index_t{1}) == index_t{1});
  match[4] = 2;
  CHECK(leader_commit_index(c, match_of, log, term_t{3}, index_t{1}) == index_t{2});
}
