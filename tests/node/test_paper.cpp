// The rules of the Raft paper (Ongaro & Ousterhout, "In Search of an Understandable Consensus
// Algorithm", §5 and Figure 2), one test case per rule, on the deterministic simulated cluster.
// Then the rules a widely copied tutorial gets wrong, each pinned by a test.
//
// Indices are the paper's plus the configuration entry: index 1 of every log here holds the
// cluster's bootstrap configuration (term 1), so the paper's first entry is at index 1 too and
// the figures' logs are written term by term from index 1.
#include <doctest/doctest.h>

#include <set>

#include "node_support.hpp"

using namespace node_test;

namespace {

/// Options under which nothing happens by itself for 10 s of virtual time: tests that play a
/// peer by hand (network().inject) use them so that only their messages move the node.
options quiet() {
  options o;
  o.election_timeout_min = 10s;
  o.election_timeout_max = 20s;
  o.heartbeat_interval = 1s;
  return o;
}

vote_request vote_for_term(std::uint64_t term, std::uint64_t last_index, std::uint64_t last_term) {
  return vote_request{term_t{term}, index_t{last_index}, term_t{last_term}, false};
}

/// Every vote response a node sent, as observed on the wire.
struct vote_log {
  struct reply {
    node_id from, to;
    vote_response body;
  };
  std::vector<reply> replies;
  void operator()(const message& m) {
    if (const auto* r = m.body.get_if<vote_response>()) replies.push_back({m.from, m.to, *r});
  }
};

template <class Cluster>
void check_no_node_failed(Cluster& c) {
  for (node_id id : c.ids())
    if (c.is_up(id)) {
      CAPTURE(id);
      CHECK_FALSE(c.node(id).failure());
    }
}

}  // namespace

// =================================================================================================
// §5.2 Leader election
// =================================================================================================

TEST_CASE("§5.2 election safety: at most one leader per term") {
  // Set-up: 5 nodes without PreVote and with a narrow timeout spread, so elections are contested,
  // under random partitions, crashes, losses and duplicates.
  std::map<term_t, std::set<node_id>> senders;  // who sent AppendEntries in each term
  std::map<term_t, std::set<node_id>> leaders;  // who was seen in the leader role in each term
  options o;
  o.pre_vote = false;
  o.election_timeout_max = 180ms;
  cluster<> c(5, 5201, o);
  CAPTURE(c.seed());
  c.network().on_send = [&](const message& m) {
    if (const auto* a = m.body.get_if<append_request>()) senders[a->term].insert(m.from);
  };
  chaos<cluster<>> ch(c, 5202);
  ch.observer = [&] {
    for (node_id id : c.ids())
      if (c.is_up(id) && c.node(id).role() == role::leader) leaders[c.node(id).term()].insert(id);
  };

  // Action: 20 s of faults.
  for (int k = 0; k < 200; ++k) ch.step();

  // Check: only a leader sends AppendEntries, and each term had at most one (§5.2, Figure 2).
  // (No structured bindings here: CAPTURE's lambda cannot capture them under clang 14.)
  for (const auto& term_senders : senders) {
    CAPTURE(term_senders.first);
    CHECK(term_senders.second.size() == 1);
  }
  for (const auto& term_leaders : leaders) {
    CAPTURE(term_leaders.first);
    CHECK(term_leaders.second.size() == 1);
    CHECK(senders[term_leaders.first] == term_leaders.second);
  }
  CHECK(leaders.size() >= 10);  // the run did hold many elections
  c.network().on_send = nullptr;
}

TEST_CASE("§5.2 a node votes at most once per term") {
  SUBCASE("two candidates of the same term, played by hand") {
    // Set-up: node 1 hears only the candidates we play; its replies go nowhere (but are seen).
    vote_log seen;
    cluster<> c(3, 5203, quiet());
    c.network().on_send = std::ref(seen);
    c.network().cut(node_id{1}, node_id{2});
    c.network().cut(node_id{1}, node_id{3});

    // Action: candidates 2 and 3 both ask for node 1's vote in term 5; 2 asks again (duplicate).
    c.network().inject(message{node_id{2}, node_id{1}, vote_for_term(5, 1, 1)});
    c.run_for(10ms);
    c.network().inject(message{node_id{3}, node_id{1}, vote_for_term(5, 1, 1)});
    c.run_for(10ms);
    c.network().inject(message{node_id{2}, node_id{1}, vote_for_term(5, 1, 1)});
    c.run_for(10ms);

    // Check: the first candidate gets the vote (and again when it asks again), the second not.
    REQUIRE(seen.replies.size() == 3);
    CHECK(seen.replies[0].to == node_id{2});
    CHECK(seen.replies[0].body.granted);
    CHECK(seen.replies[1].to == node_id{3});
    CHECK_FALSE(seen.replies[1].body.granted);
    CHECK(seen.replies[2].to == node_id{2});
    CHECK(seen.replies[2].body.granted);
    CHECK(c.storage(node_id{1}).state() == hard_state{term_t{5}, node_id{2}});
    c.network().on_send = nullptr;
  }

  SUBCASE("the vote survives a crash and restart") {
    // Set-up: node 1 votes for 2 in term 5, then crashes and restarts.
    vote_log seen;
    cluster<> c(3, 5208, quiet());
    c.network().on_send = std::ref(seen);
    c.network().cut(node_id{1}, node_id{2});
    c.network().cut(node_id{1}, node_id{3});
    c.network().inject(message{node_id{2}, node_id{1}, vote_for_term(5, 1, 1)});
    c.run_for(10ms);
    REQUIRE(seen.replies.size() == 1);
    REQUIRE(seen.replies[0].body.granted);
    c.crash(node_id{1});
    c.restart(node_id{1});

    // Action: candidate 3 asks in the same term.
    c.network().inject(message{node_id{3}, node_id{1}, vote_for_term(5, 1, 1)});
    c.run_for(10ms);

    // Check: refused; the restarted node still knows term 5 and its vote (Figure 2: persistent).
    REQUIRE(seen.replies.size() == 2);
    CHECK_FALSE(seen.replies[1].body.granted);
    CHECK(c.node(node_id{1}).term() == term_t{5});
    CHECK(c.storage(node_id{1}).state() == hard_state{term_t{5}, node_id{2}});
    c.network().on_send = nullptr;
  }

  SUBCASE("under random faults and contested elections") {
    // Set-up: every granted (real) vote on the wire, by voter and term.
    std::map<std::pair<node_id, term_t>, std::set<node_id>> granted;
    std::size_t votes = 0;
    options o;
    o.pre_vote = false;
    o.election_timeout_max = 170ms;
    cluster<> c(5, 5204, o);
    CAPTURE(c.seed());
    c.network().on_send = [&](const message& m) {
      if (const auto* r = m.body.get_if<vote_response>(); r && r->granted && !r->pre_vote) {
        granted[{m.from, r->term}].insert(m.to);
        ++votes;
      }
    };
    chaos<cluster<>> ch(c, 5205);
    for (int k = 0; k < 150; ++k) ch.step();

    // Check: per voter and term, all granted votes went to one candidate (§5.2).
    for (const auto& voter_term : granted) {
      CAPTURE(voter_term.first.first);
      CAPTURE(voter_term.first.second);
      CHECK(voter_term.second.size() == 1);
    }
    CHECK(votes >= 20);
    c.network().on_send = nullptr;
  }
}

TEST_CASE("§5.2 votes are counted once per voter per round (duplicated replies do not elect)") {
  // Set-up: 5 nodes, 3 of them down, and a network that delivers every message twice. Nodes 1 and
  // 2 can each collect at most two distinct votes (their own and the other's): not a majority.
  std::size_t grants = 0;
  options o;
  o.pre_vote = false;
  cluster<> c(5, 5206, o);
  c.network().on_send = [&](const message& m) {
    if (const auto* r = m.body.get_if<vote_response>(); r && r->granted) ++grants;
  };
  for (std::uint64_t id = 3; id <= 5; ++id) c.crash(node_id{id});
  c.network().faults.duplicate = 1.0;
  const std::uint64_t sent_before = c.network().counters().sent;

  // Action: 5 s of elections.
  bool someone_led = false;
  c.run_until([&] { return someone_led = c.leader().has_value(); }, 5s);

  // Check: every granted vote arrived twice, and still nobody won (§5.2: a majority of voters).
  CHECK_FALSE(someone_led);
  CHECK(grants >= 3);
  CHECK(c.network().counters().duplicated == c.network().counters().sent - sent_before);
  c.network().on_send = nullptr;
}

TEST_CASE("§5.1 a message with a higher term makes a leader a follower, with the new term persisted") {
  // Set-up: a settled 3-node cluster.
  cluster<> c(3, 5207);
  const node_id l = c.wait_for_leader();
  REQUIRE(settle(c));
  const term_t t = c.node(l).term();
  const node_id f = l == node_id{1} ? node_id{2} : node_id{1};

  // Action: a reply from a follower that carries a higher term (Figure 2, rules for all servers).
  c.network().inject(message{f, l, append_response{term_t{t.value + 5}, false, index_t{0}, index_t{0}, index_t{0}, term_t{0}}});
  c.run_for(3ms);

  // Check: it stepped down, adopted the term, and stored it, with no vote in it.
  CHECK(c.node(l).role() == role::follower);
  CHECK(c.node(l).term() == term_t{t.value + 5});
  CHECK(c.storage(l).state() == hard_state{term_t{t.value + 5}, no_node});
}

// =================================================================================================
// §5.3 Log replication
// =================================================================================================

TEST_CASE("§5.3 Figure 7: follower logs (a)-(f) are brought in line with the leader") {
  // Set-up: the figure's logs, by hand. Node 1 holds the top log and will lead term 8; nodes 2..7
  // hold (a)..(f). Each follower's current term is its last entry's term; node 1's is 7, so its
  // election makes it the leader of term 8.
  const std::vector<std::vector<std::uint64_t>> figure = {
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6},        // leader for term 8
      {1, 1, 1, 4, 4, 5, 5, 6, 6},           // (a) missing an entry
      {1, 1, 1, 4},                          // (b) missing many entries
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6},     // (c) an extra uncommitted entry
      {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7},  // (d) extra entries of a term the leader never saw
      {1, 1, 1, 4, 4, 4, 4},                 // (e) missing entries and extra ones
      {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3},     // (f) many extra entries of terms 2 and 3
  };
  std::vector<persistent_state> initial;
  initial.push_back(hand_made(7, 7, figure[0]));
  for (std::size_t k = 1; k < figure.size(); ++k) initial.push_back(hand_made(7, figure[k].back(), figure[k]));
  cluster<> c(7, 5301, {}, initial);
  const node_id leader{1};

  // Node 1 must be the one to win: the followers cannot reach each other, so only node 1 can
  // gather votes. It gets (a), (b), (e), (f)'s: its log is at least as up-to-date as theirs.
  for (std::uint64_t a = 2; a <= 7; ++a)
    for (std::uint64_t b = a + 1; b <= 7; ++b) c.network().cut_both(node_id{a}, node_id{b});
  REQUIRE(c.wait_for_leader() == leader);
  CHECK(c.node(leader).term() == term_t{8});
  // The new leader's log is the figure's top log plus its no-op of term 8 (§8).
  CHECK(terms_of(c.node(leader).log()) == std::vector<std::uint64_t>{1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 8});
  for (std::size_t k = 1; k < figure.size(); ++k)
    CHECK(terms_of(c.node(node_id{k + 1}).log()) == figure[k]);  // untouched so far

  // Action: heal; the leader's consistency check finds where each follower's log matches and
  // overwrites the rest (§5.3).
  c.network().heal();
  const bool converged = c.run_until(
      [&] {
        for (node_id id : c.ids())
          if (!same_log(c.node(id).log(), c.node(leader).log())) return false;
        return true;
      },
      5s);

  // Check: every follower's log equals the leader's, entry by entry, and the leader stayed put.
  CHECK(converged);
  CHECK(c.leader() == leader);
  CHECK(c.node(leader).term() == term_t{8});
  for (node_id id : c.ids()) {
    CAPTURE(id);
    CHECK(to_text(terms_of(c.node(id).log())) == to_text(terms_of(c.node(leader).log())));
    CHECK(same_log(c.node(id).log(), c.node(leader).log()));
    CHECK(terms_of(c.storage(id).entries()) == terms_of(c.node(leader).log()));  // durable too
  }
  // All of it commits (through the no-op) and every state machine applies the same entries.
  REQUIRE(settle(c));
  for (node_id id : c.ids()) {
    CAPTURE(id);
    CHECK(c.state_machine(id).data() == c.state_machine(leader).data());
    CHECK(c.state_machine(id).hash() == c.state_machine(leader).hash());
  }
  CHECK(c.state_machine(leader).find("i10") == std::optional<std::string>("t6"));
  CHECK(c.state_machine(leader).find("i11") == std::nullopt);  // (c), (d), (f)'s extras are gone
  check_no_node_failed(c);
}

TEST_CASE("§5.3 leader append-only: a leader never overwrites or deletes entries in its log") {
  SUBCASE("under random faults, every leader's log only grows while it leads") {
    // Set-up: record each leader's log (terms) at every step while it leads.
    options o;
    o.pre_vote = false;
    cluster<> c(5, 5302, o);
    CAPTURE(c.seed());
    std::map<std::pair<node_id, term_t>, std::vector<std::uint64_t>> seen;  // last view per reign
    std::size_t violations = 0, observations = 0;
    chaos<cluster<>> ch(c, 5303);
    ch.observer = [&] {
      for (node_id id : c.ids()) {
        if (!c.is_up(id) || c.node(id).role() != role::leader) continue;
        auto now = terms_of(c.node(id).log());
        auto& before = seen[{id, c.node(id).term()}];
        ++observations;
        if (now.size() < before.size() || !std::equal(before.begin(), before.end(), now.begin()))
          ++violations;
        before = std::move(now);
      }
    };
    for (int k = 0; k < 150; ++k) ch.step();

    // Check: no leader's log ever lost or changed an entry during its term.
    CHECK(violations == 0);
    CHECK(observations > 1000);
    CHECK(seen.size() >= 5);
  }

  SUBCASE("an AppendEntries of the leader's own term that conflicts with its log is ignored") {
    // Set-up: a leader with a few entries.
    cluster<> c(3, 5304);
    const node_id l = c.wait_for_leader();
    for (int k = 0; k < 3; ++k) REQUIRE(c.propose_and_wait(kv_state_machine::put("a", std::to_string(k)))->succeeded());
    const auto before = terms_of(c.node(l).log());
    const term_t t = c.node(l).term();
    const node_id other = l == node_id{1} ? node_id{2} : node_id{1};

    // Action: a forged AppendEntries claiming the same term, truncating the leader's log at 2.
    append_request forged{t, index_t{1}, term_t{1}, index_t{0}, {}};
    forged.entries.push_back(log_entry{t, index_t{2}, entry_kind::command, kv_state_machine::put("x", "y")});
    c.network().inject(message{other, l, forged});
    c.run_for(20ms);

    // Check: still the leader of the same term, with the same log.
    CHECK(c.node(l).role() == role::leader);
    CHECK(c.node(l).term() == t);
    CHECK(terms_of(c.node(l).log()) == before);
    CHECK(c.state_machine(l).find("x") == std::nullopt);
  }
}

TEST_CASE("§5.3 log matching: same index and term means identical logs up to there") {
  // Set-up: random faults; after every step compare every pair of logs.
  options o;
  o.pre_vote = false;
  cluster<> c(5, 5305, o);
  CAPTURE(c.seed());
  std::size_t pairs_checked = 0, shared_entries = 0;
  std::vector<std::string> broken;
  chaos<cluster<>> ch(c, 5306);
  std::uint64_t step = 0;
  ch.observer = [&] {
    if (++step % 4 != 0) return;
    const auto ids = c.ids();
    for (node_id a : ids)
      for (node_id b : ids) {
        if (a >= b || !c.is_up(a) || !c.is_up(b)) continue;
        const in_memory_log& la = c.node(a).log();
        const in_memory_log& lb = c.node(b).log();
        ++pairs_checked;
        // Walk down from the shorter end: at the highest index where the terms agree, every
        // entry at or below it must be identical (Log Matching Property, §5.3).
        index_t top{0};
        for (index_t i = std::min(la.last_index(), lb.last_index()); i > index_t{0}; i = i.prev())
          if (la.term_at(i) == lb.term_at(i)) {
            top = i;
            break;
          }
        shared_entries += top.value;
        for (index_t i{1}; i <= top; i = i.next())
          if (!(la.at(i) == lb.at(i)))
            broken.push_back("nodes " + std::to_string(a.value) + "," + std::to_string(b.value) +
                             " differ at " + std::to_string(i.value) + " below matching " +
                             std::to_string(top.value));
      }
  };

  // Action: 15 s of faults with proposals.
  for (int k = 0; k < 150; ++k) ch.step();

  // Check.
  CHECK(broken.empty());
  if (!broken.empty()) MESSAGE(broken.front());
  CHECK(pairs_checked > 1000);
  CHECK(shared_entries > 10000);
}

// =================================================================================================
// §5.4 Safety
// =================================================================================================

TEST_CASE("§5.4.1 election restriction: last term is compared before index") {
  // Set-up (reachable): node 1 led term 1 and appended 2..5 to its own log only; node 2 was
  // elected in term 2 (with node 3's vote) and appended one entry of term 2, then both stopped.
  // Node 1's log is longer, node 2's is more up-to-date (its last term is higher).
  // Node 3 is cut off, so a leader needs the other one's vote.
  vote_log seen;
  cluster<> c(3, 5401, {},
              {hand_made(3, 1, {1, 1, 1, 1, 1}, node_id{1}), hand_made(3, 2, {1, 2}, node_id{2}),
               hand_made(3, 2, {1}, node_id{2})});
  c.network().on_send = std::ref(seen);
  c.network().isolate(node_id{3}, c.ids());

  // Action: let them campaign.
  const node_id l = c.wait_for_leader();
  c.run_for(2s);

  // Check: node 2 wins; node 1 (longer log, older last term) is refused every vote by node 2,
  // pre-votes included, while node 1 grants node 2 (shorter log, newer last term).
  CHECK(l == node_id{2});
  CHECK(c.leader() == node_id{2});
  std::size_t asked_by_1 = 0, granted_to_2 = 0;
  for (const auto& r : seen.replies) {
    if (r.from == node_id{2} && r.to == node_id{1}) {
      ++asked_by_1;
      CHECK_FALSE(r.body.granted);
    }
    if (r.from == node_id{1} && r.to == node_id{2} && r.body.granted) ++granted_to_2;
  }
  CHECK(asked_by_1 >= 1);
  CHECK(granted_to_2 >= 1);
  // Node 1's uncommitted term-1 entries are replaced by the leader's log.
  REQUIRE(c.run_until([&] { return same_log(c.node(node_id{1}).log(), c.node(node_id{2}).log()); }, 2s));
  CHECK(c.node(node_id{1}).log().term_at(index_t{2}) == term_t{2});
  CHECK(c.node(node_id{1}).log().term_at(index_t{4}) != term_t{1});
  c.network().on_send = nullptr;
}

TEST_CASE("§5.4.2 Figure 8: entries from older terms are not committed by counting replicas") {
  // Set-up: Figure 8 (b). S1 led term 2 and stored index 2 (term 2); S5 was elected for term 3
  // by S3, S4, S5 and stored a different index 2 (term 3) on itself only. (In the figure S2 also
  // got index 2 in term 2; here S2 gets it from S1 in term 4 like S3 does, so that S1 hears
  // from S2 that it stores index 2 without S2 also receiving index 3.) One entry per
  // AppendEntries, so that the test can let index 2 through and stop index 3.
  options o;
  o.max_entries_per_message = 1;
  cluster<> c(5, 5402, o,
              {hand_made(5, 2, {1, 2}, node_id{1}), hand_made(5, 2, {1}, node_id{1}),
               hand_made(5, 3, {1}, node_id{5}), hand_made(5, 3, {1}, node_id{5}),
               hand_made(5, 3, {1, 3}, node_id{5})});
  const auto all = c.ids();
  const node_id s1{1}, s2{2}, s3{3}, s4{4}, s5{5};
  c.crash(s5);

  // (c) S1 is elected (S3 and S4 vote; S2 is kept out of the election) ...
  c.network().isolate(s2, all);
  REQUIRE(c.wait_for_leader() == s1);
  CHECK(c.node(s1).term() == term_t{4});
  CHECK(terms_of(c.node(s1).log()) == std::vector<std::uint64_t>{1, 2, 4});  // + its no-op
  // ... and replicates index 2 (term 2) to S2 and S3. Its messages reach S2 and S3 only, and
  // each is cut off from S1 as soon as it stores index 2, before the no-op (index 3, term 4)
  // gets there. Their acknowledgements still reach S1.
  c.network().heal();
  c.network().cut(s1, s4);
  REQUIRE(c.run_until(
      [&] {
        for (node_id s : {s2, s3})
          if (c.node(s).log().last_index() >= index_t{2}) c.network().cut(s1, s);
        return c.network().is_cut(s1, s2) && c.network().is_cut(s1, s3);
      },
      1s));
  c.run_for(20ms);  // the acknowledgements reach S1

  // Check: the term-2 entry is stored on a majority (S1, S2, S3), its leader of term 4 has
  // heard so, and still it is not committed: a leader commits by counting replicas only
  // entries of its own term (§5.4.2).
  for (node_id s : {s1, s2, s3}) {
    CAPTURE(s);
    CHECK(c.node(s).log().term_at(index_t{2}) == term_t{2});
    CHECK(c.storage(s).entries().size() >= 2);
  }
  CHECK(c.node(s2).log().last_index() == index_t{2});
  CHECK(c.node(s3).log().last_index() == index_t{2});
  CHECK(c.node(s1).role() == role::leader);
  for (node_id s : {s1, s2, s3, s4}) {
    CAPTURE(s);
    CHECK(c.node(s).commit_index() < index_t{2});
    CHECK(c.state_machine(s).find("i2") == std::nullopt);
  }

  SUBCASE("(d) S1 crashes; S5 is elected and overwrites index 2 with its term-3 entry") {
    c.crash(s1);
    c.restart(s5);
    c.network().heal();
    // S5 is the only one who can gather votes (the others cannot reach each other); its last
    // term (3) beats S2's and S3's (2) and S4's (1), so it is elected.
    c.network().cut_both(s2, s3);
    c.network().cut_both(s2, s4);
    c.network().cut_both(s3, s4);
    REQUIRE(c.wait_for_leader() == s5);
    c.network().heal();
    c.restart(s1);
    REQUIRE(settle(c));
    for (node_id s : all) {
      CAPTURE(s);
      CHECK(c.node(s).log().term_at(index_t{2}) == term_t{3});
      CHECK(c.node(s).commit_index() >= index_t{2});
      CHECK(c.state_machine(s).find("i2") == std::optional<std::string>("t3"));
    }
  }

  SUBCASE("(e) S1 first replicates an entry of its own term to a majority: index 2 commits with it") {
    c.network().heal();
    REQUIRE(c.run_until([&] { return c.node(s1).commit_index() >= index_t{3}; }, 1s));
    CHECK(c.node(s1).log().term_at(index_t{3}) == term_t{4});
    c.crash(s1);
    c.restart(s5);
    // S5 can no longer be elected: a majority's last term (4) is newer than its own (3).
    const node_id l = c.wait_for_leader();
    CHECK(l != s5);
    REQUIRE(settle(c));
    for (node_id s : all) {
      if (!c.is_up(s)) continue;
      CAPTURE(s);
      CHECK(c.node(s).log().term_at(index_t{2}) == term_t{2});
      CHECK(c.state_machine(s).find("i2") == std::optional<std::string>("t2"));
    }
  }
}

TEST_CASE("§5.4.3 state machine safety: no two servers apply different commands at one index") {
  // Set-up: a state machine that records what every replica applies at every index, in a
  // cluster with crashes (restarted nodes apply everything again from index 1).
  applied_registry registry;
  recording_state_machine::registry = &registry;
  {
    options o;
    o.pre_vote = false;
    cluster<recording_state_machine> c(5, 5403, o);
    CAPTURE(c.seed());
    chaos<cluster<recording_state_machine>> ch(c, 5404);
    for (int k = 0; k < 150; ++k) ch.step();
    ch.heal_all();
    REQUIRE(c.propose_and_wait(kv_state_machine::put("final", "1"))->succeeded());
    REQUIRE(settle(c));

    // Check: every replica applied the same command at every index; acknowledged puts are there.
    CHECK(registry.violations.empty());
    CHECK(registry.applies > 5 * registry.command_at.size() / 2);  // indices applied many times
    CHECK(registry.command_at.size() >= 50);
    std::size_t acknowledged = 0;
    for (const auto& p : ch.puts())
      if (p.p->succeeded()) {
        ++acknowledged;
        for (node_id id : c.ids()) {
          CAPTURE(p.key);
          CHECK(c.state_machine(id).kv.find(p.key) == std::optional<std::string>(p.value));
        }
      }
    CHECK(acknowledged >= 20);
    for (node_id id : c.ids()) {
      CAPTURE(id);
      CHECK_FALSE(c.node(id).failure());
      CHECK(c.state_machine(id).kv.hash() == c.state_machine(*c.leader()).kv.hash());
    }
  }
  recording_state_machine::registry = nullptr;
}

// =================================================================================================
// Rules the tutorial gets wrong
// =================================================================================================

TEST_CASE("a heartbeat in the same term does not clear the vote") {
  // Set-up: node 1 votes for candidate 2 in term 5 (we play 2 and 3 by hand).
  vote_log seen;
  cluster<> c(3, 5501, quiet());
  c.network().on_send = std::ref(seen);
  c.network().cut(node_id{1}, node_id{2});
  c.network().cut(node_id{1}, node_id{3});
  c.network().inject(message{node_id{2}, node_id{1}, vote_for_term(5, 1, 1)});
  c.run_for(10ms);
  REQUIRE(seen.replies.size() == 1);
  REQUIRE(seen.replies[0].body.granted);
  REQUIRE(c.storage(node_id{1}).state() == hard_state{term_t{5}, node_id{2}});

  // Action: node 2, now leader of term 5, sends heartbeats (AppendEntries without entries).
  for (int k = 0; k < 3; ++k) {
    c.network().inject(message{node_id{2}, node_id{1},
                               append_request{term_t{5}, index_t{1}, term_t{1}, index_t{0}, {}}});
    c.run_for(10ms);
  }
  REQUIRE(c.node(node_id{1}).leader() == node_id{2});

  // Check: the vote is still on record, in memory and on disk, and a second candidate of the
  // same term is refused.
  CHECK(c.storage(node_id{1}).state() == hard_state{term_t{5}, node_id{2}});
  c.network().inject(message{node_id{3}, node_id{1}, vote_for_term(5, 1, 1)});
  c.run_for(10ms);
  REQUIRE(seen.replies.size() == 2);
  CHECK(seen.replies[1].to == node_id{3});
  CHECK_FALSE(seen.replies[1].body.granted);
  CHECK(c.storage(node_id{1}).state() == hard_state{term_t{5}, node_id{2}});
  c.network().on_send = nullptr;
}

TEST_CASE("AppendEntries truncates only from the first conflicting entry; a stale duplicate request removes nothing") {
  SUBCASE("by hand: conflict, stale duplicate, and the commit index rule") {
    // Set-up: node 1 holds [1 1 2 2 2] in term 3; we play the leader of term 3 (node 2).
    cluster<> c(3, 5502, quiet(), {hand_made(3, 3, {1, 1, 2, 2, 2})});
    c.network().cut(node_id{1}, node_id{2});
    c.network().cut(node_id{1}, node_id{3});
    auto send = [&](std::uint64_t prev, std::uint64_t prev_term, std::uint64_t commit,
                    std::vector<log_entry> entries) {
      c.network().inject(message{node_id{2}, node_id{1},
                                 append_request{term_t{3}, index_t{prev}, term_t{prev_term},
                                                index_t{commit}, std::move(entries)}});
      c.run_for(10ms);
    };

    // Action 1: entries 3 (term 2, matches) and 4 (term 3, conflicts with our term-2 entry).
    send(2, 1, 0, {command_entry(3, 2), command_entry(4, 3)});
    // Check: truncated from index 4, the first conflict: 3 is kept, 5 goes with 4 (§5.3 step 3).
    CHECK(terms_of(c.node(node_id{1}).log()) == std::vector<std::uint64_t>{1, 1, 2, 3});
    CHECK(terms_of(c.storage(node_id{1}).entries()) == std::vector<std::uint64_t>{1, 1, 2, 3});

    // Action 2: a stale, duplicated request with fewer entries (only entry 2) arrives late.
    send(1, 1, 0, {command_entry(2, 1)});
    // Check: nothing is removed.
    CHECK(terms_of(c.node(node_id{1}).log()) == std::vector<std::uint64_t>{1, 1, 2, 3});
    CHECK(terms_of(c.storage(node_id{1}).entries()) == std::vector<std::uint64_t>{1, 1, 2, 3});

    // Action 3: the same stale request with a high leader commit.
    send(1, 1, 10, {command_entry(2, 1)});
    // Check: commit index = min(leader commit, index of the last new entry) = 2, not 4.
    CHECK(c.node(node_id{1}).commit_index() == index_t{2});
    CHECK(c.node(node_id{1}).log().last_index() == index_t{4});
  }

  SUBCASE("in a running cluster: a late copy of an early AppendEntries changes nothing") {
    cluster<> c(3, 5503);
    const node_id l = c.wait_for_leader();
    for (int k = 0; k < 5; ++k) REQUIRE(c.propose_and_wait(kv_state_machine::put("k" + std::to_string(k), "v"))->succeeded());
    REQUIRE(settle(c));
    const node_id f = l == node_id{1} ? node_id{2} : node_id{1};
    const auto before = terms_of(c.node(f).log());
    const index_t commit_before = c.node(f).commit_index();
    REQUIRE(before.size() >= 7);

    // Action: the leader's request that carried entries 2..3, delivered again now.
    const in_memory_log& ll = c.node(l).log();
    append_request stale{c.node(l).term(), index_t{1}, term_t{1}, index_t{0}, {ll.at(index_t{2}), ll.at(index_t{3})}};
    c.network().inject(message{l, f, stale});
    c.run_for(5ms);

    // Check: the follower's log and commit index are unchanged.
    CHECK(terms_of(c.node(f).log()) == before);
    CHECK(same_log(c.node(f).log(), c.node(l).log()));
    CHECK(c.node(f).commit_index() >= commit_before);
    CHECK(c.storage(f).entries().size() == before.size());
  }
}

TEST_CASE("term and vote are persisted before the vote reply leaves") {
  // Set-up: at the moment any message leaves a node, look at what its storage holds.
  std::size_t votes_seen = 0, requests_seen = 0, messages_seen = 0;
  std::vector<std::string> problems;
  options o;
  o.pre_vote = false;  // more real votes
  o.election_timeout_max = 180ms;
  cluster<> c(5, 5504, o);
  CAPTURE(c.seed());
  c.network().on_send = [&](const message& m) {
    const hard_state hs = c.storage(m.from).state();
    auto problem = [&](const std::string& what) {
      problems.push_back(what + " (node " + std::to_string(m.from.value) + ", stored term " +
                         std::to_string(hs.term.value) + " vote " + std::to_string(hs.voted_for.value) + ")");
    };
    if (const auto* r = m.body.get_if<vote_response>(); r && r->granted && !r->pre_vote) {
      ++votes_seen;
      if (hs != hard_state{r->term, m.to}) problem("vote for " + std::to_string(m.to.value) + " not stored");
    }
    if (const auto* r = m.body.get_if<vote_request>(); r && !r->pre_vote) {
      ++requests_seen;
      if (hs != hard_state{r->term, m.from}) problem("own candidacy not stored");
    }
    // Every message carrying a term (but a pre-vote's, which asks about a future term) leaves
    // only after that term is durable.
    const bool future = m.body.visit([](const auto& b) {
      if constexpr (requires { b.pre_vote; }) return b.pre_vote;
      return false;
    });
    ++messages_seen;
    if (!future && term_of(m.body) > hs.term) problem("message term above stored term");
  };
  chaos<cluster<>> ch(c, 5505);

  // Action: many elections.
  for (int k = 0; k < 120; ++k) ch.step();

  // Check.
  CHECK(problems.empty());
  if (!problems.empty()) MESSAGE(problems.front());
  CHECK(votes_seen >= 20);
  CHECK(requests_seen >= 20);
  c.network().on_send = nullptr;
}

TEST_CASE("a new leader commits entries of earlier terms only through an entry of its own term (no-op)") {
  // Set-up: entries 2 and 3 of term 1 are on nodes 1 and 2 (a majority) but nobody knows they
  // are committed. Nobody proposes anything. At most two entries per AppendEntries, so that
  // node 3 first acknowledges 2..3 alone.
  std::vector<std::string> problems;
  options o;
  o.max_entries_per_message = 2;
  cluster<> c(3, 5505, o,
              {hand_made(3, 1, {1, 1, 1}), hand_made(3, 1, {1, 1, 1}), hand_made(3, 1, {1})});
  // The commit index a leader announces always points at an entry of its own term (Figure 8).
  c.network().on_send = [&](const message& m) {
    const auto* a = m.body.get_if<append_request>();
    if (a == nullptr || a->leader_commit == index_t{0}) return;
    const auto t = c.node(m.from).log().term_at(a->leader_commit);
    if (t != a->term)
      problems.push_back("leader " + std::to_string(m.from.value) + " of term " + std::to_string(a->term.value) +
                         " announced commit " + std::to_string(a->leader_commit.value));
  };

  // Action: elect a leader; it hears only from node 3 at first, which acknowledges entries 2..3
  // (then a majority with the leader, in the leader's knowledge) before it gets the no-op.
  const node_id l = c.wait_for_leader();
  CHECK(l != node_id{3});  // node 3's log is behind
  const node_id twin = l == node_id{1} ? node_id{2} : node_id{1};
  c.network().cut(l, twin);
  REQUIRE(c.run_until([&] { return c.node(node_id{3}).applied_index() >= index_t{4}; }, 2s));
  c.network().heal();
  REQUIRE(settle(c));
  c.run_for(1s);

  // Check: the leader appended a no-op of its term at index 4; through it, 2 and 3 committed
  // and were applied everywhere without any client request.
  const term_t t = c.node(l).term();
  REQUIRE(c.node(l).log().last_index() == index_t{4});
  CHECK(c.node(l).log().at(index_t{4}).kind == entry_kind::noop);
  CHECK(c.node(l).log().at(index_t{4}).term == t);
  for (node_id id : c.ids()) {
    CAPTURE(id);
    CHECK(c.node(id).commit_index() == index_t{4});
    CHECK(c.state_machine(id).find("i2") == std::optional<std::string>("t1"));
    CHECK(c.state_machine(id).find("i3") == std::optional<std::string>("t1"));
  }
  CHECK(problems.empty());
  if (!problems.empty()) MESSAGE(problems.front());
  c.network().on_send = nullptr;
}
