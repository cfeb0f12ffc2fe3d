// Scenarios on the simulated cluster: crashes, partitions, restarts, bad networks, PreVote and
// CheckQuorum, message costs, errors a client sees. Everything runs on virtual time.
#include <doctest/doctest.h>

// Standard headers before any Asio header: Asio decides how it allocates (aligned_alloc or
// operator new) from macros of the standard library, and two translation units that decide
// differently break the one-definition rule (ASan reports alloc-dealloc-mismatch).
#include "node_support.hpp"

#include <asio/co_spawn.hpp>

// The bounded-memory test reads the heap in use with glibc's mallinfo2(); under a sanitizer the
// heap is the sanitizer's, so the test is left out there.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NODE_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define NODE_TEST_ASAN 1
#endif
#if defined(__GLIBC__) && defined(__GLIBC_PREREQ) && !defined(NODE_TEST_ASAN)
#if __GLIBC_PREREQ(2, 33)
#include <malloc.h>
#define NODE_TEST_HEAP_IN_USE 1
#endif
#endif

using namespace node_test;

namespace {

using kv = kv_state_machine;
using prop = std::shared_ptr<proposal<std::string>>;

std::optional<std::string> some(const char* s) { return std::string(s); }

/// Proposes through the current leader and waits for the outcome; true if it succeeded.
bool commit(cluster<>& c, const std::string& key, const std::string& value) {
  return c.propose_and_wait(kv::put(key, value))->succeeded();
}

/// Some node of `ids` other than `not_this`.
node_id other_than(const cluster<>& c, node_id not_this, std::size_t nth = 0) {
  for (node_id id : c.ids())
    if (id != not_this && nth-- == 0) return id;
  throw std::logic_error("no such node");
}

bool log_holds(const in_memory_log& log, const buffer& command) {
  for (index_t i = log.first_index(); i <= log.last_index(); i = i.next())
    if (log.at(i).data == command) return true;
  return false;
}

bool failed_without_success(const prop& p, std::initializer_list<errc> allowed) {
  if (!p->done() || p->succeeded()) return false;
  for (errc e : allowed)
    if (p->outcome->error().code == e) return true;
  return false;
}

}  // namespace

TEST_CASE("leader crash: a new leader is elected and committed entries are kept") {
  // Set-up: 5 nodes, ten committed puts.
  cluster<> c(5, 6101);
  const node_id old = c.wait_for_leader();
  const term_t old_term = c.node(old).term();
  for (int k = 0; k < 10; ++k) REQUIRE(commit(c, "a" + std::to_string(k), std::to_string(k)));

  // Action: the leader crashes.
  c.crash(old);

  // Check: another node leads a later term (§5.2) and still holds everything committed (§5.4).
  const node_id fresh = c.wait_for_leader();
  CHECK(fresh != old);
  CHECK(c.node(fresh).term() > old_term);
  REQUIRE(commit(c, "b", "after"));
  c.restart(old);
  REQUIRE(settle(c));
  for (node_id id : c.ids()) {
    CAPTURE(id);
    for (int k = 0; k < 10; ++k) CHECK(c.state_machine(id).find("a" + std::to_string(k)) == std::to_string(k));
    CHECK(c.state_machine(id).find("b") == some("after"));
    CHECK(c.state_machine(id).hash() == c.state_machine(fresh).hash());
  }
}

TEST_CASE("a partitioned old leader's uncommitted entries are replaced when it rejoins") {
  options o;
  SUBCASE("with CheckQuorum (it steps down in the minority)") { o.check_quorum = true; }
  SUBCASE("without CheckQuorum (it leads its minority until it hears of a newer term)") { o.check_quorum = false; }
  CAPTURE(o.check_quorum);

  // Set-up: 5 nodes, one committed put; then the leader and one follower are cut off.
  cluster<> c(5, 6102, o);
  const node_id old = c.wait_for_leader();
  REQUIRE(commit(c, "a", "1"));
  REQUIRE(settle(c));
  const node_id partner = other_than(c, old);
  std::vector<node_id> majority;
  for (node_id id : c.ids())
    if (id != old && id != partner) majority.push_back(id);
  c.network().partition({{old, partner}, majority}, c.ids());

  // Action: clients write through the old leader; the majority elects a leader and commits.
  const buffer x = kv::put("x", "lost"), y = kv::put("y", "lost");
  const prop px = c.propose(old, x), py = c.propose(old, y);
  c.run_for(20ms);
  CHECK(log_holds(c.node(old).log(), x));
  CHECK(log_holds(c.node(partner).log(), x));  // on two of five nodes: not committed
  REQUIRE(c.run_until([&] {
    auto l = c.leader();
    return l && std::find(majority.begin(), majority.end(), *l) != majority.end();
  }, 5s));
  const node_id fresh = *c.leader();
  const prop pb = c.propose(fresh, kv::put("b", "2"));
  REQUIRE(c.run_until([&] { return pb->done(); }, 5s));
  CHECK(pb->succeeded());
  CHECK_FALSE(px->succeeded());

  // The old side rejoins.
  c.network().heal();
  REQUIRE(settle(c));

  // Check: its proposals fail (never succeed) and its entries are gone from every log (§5.3).
  CHECK(failed_without_success(px, {errc::leadership_lost, errc::not_leader}));
  CHECK(failed_without_success(py, {errc::leadership_lost, errc::not_leader}));
  CHECK(c.leader() == fresh);
  for (node_id id : c.ids()) {
    CAPTURE(id);
    CHECK_FALSE(log_holds(c.node(id).log(), x));
    CHECK_FALSE(log_holds(c.node(id).log(), y));
    CHECK(c.state_machine(id).find("x") == std::nullopt);
    CHECK(c.state_machine(id).find("y") == std::nullopt);
    CHECK(c.state_machine(id).find("a") == some("1"));
    CHECK(c.state_machine(id).find("b") == some("2"));
    CHECK(same_log(c.node(id).log(), c.node(fresh).log()));
  }
}

TEST_CASE("a minority partition makes no progress") {
  options o;
  bool leader_in_minority = false;
  SUBCASE("the leader in the minority, without CheckQuorum (it keeps accepting proposals)") {
    leader_in_minority = true;
    o.check_quorum = false;
  }
  SUBCASE("the leader in the minority, with CheckQuorum") { leader_in_minority = true; }
  SUBCASE("two followers in the minority") {}
  CAPTURE(leader_in_minority);
  CAPTURE(o.check_quorum);

  // Set-up: 5 nodes, a committed put, then a 2-node minority is cut off.
  cluster<> c(5, 6103, o);
  const node_id leader = c.wait_for_leader();
  REQUIRE(commit(c, "a", "1"));
  REQUIRE(settle(c));
  std::vector<node_id> minority, majority;
  if (leader_in_minority) minority = {leader, other_than(c, leader)};
  else minority = {other_than(c, leader, 0), other_than(c, leader, 1)};
  for (node_id id : c.ids())
    if (std::find(minority.begin(), minority.end(), id) == minority.end()) majority.push_back(id);
  c.network().partition({minority, majority}, c.ids());
  std::map<node_id, index_t> commit_before;
  for (node_id id : minority) commit_before[id] = c.node(id).commit_index();

  // Action: 3 s of proposals through both minority nodes, every 100 ms.
  std::vector<prop> through_minority;
  for (int k = 0; k < 30; ++k) {
    for (node_id id : minority) through_minority.push_back(c.propose(id, kv::put("m" + std::to_string(k), "x")));
    c.run_for(100ms);
  }

  // Check: none succeeded; the minority's commit indices did not move; the majority moved on.
  for (const auto& p : through_minority) CHECK_FALSE(p->succeeded());
  for (node_id id : minority) {
    CAPTURE(id);
    CHECK(c.node(id).commit_index() == commit_before[id]);
    CHECK(c.state_machine(id).find("m0") == std::nullopt);
  }
  REQUIRE(c.run_until([&] {
    auto l = c.leader();
    return l && std::find(majority.begin(), majority.end(), *l) != majority.end();
  }, 5s));
  const prop pm = c.propose(*c.leader(), kv::put("progress", "yes"));
  REQUIRE(c.run_until([&] { return pm->done(); }, 5s));
  CHECK(pm->succeeded());
  for (node_id id : minority) CHECK(c.node(id).commit_index() == commit_before[id]);
}

TEST_CASE("5 nodes: with 2 down the cluster commits, with 3 down it does not") {
  // Set-up.
  cluster<> c(5, 6104);
  const node_id first = c.wait_for_leader();
  REQUIRE(commit(c, "a", "1"));

  // Action 1: the leader and one follower crash. Check: the other three still commit.
  c.crash(first);
  c.crash(other_than(c, first));
  CHECK(commit(c, "b", "2"));

  // Action 2: a third node crashes; two remain.
  REQUIRE(settle(c));
  node_id third = no_node;
  for (node_id id : c.ids())
    if (c.is_up(id) && id != *c.leader()) third = id;
  c.crash(third);
  std::vector<node_id> up;
  for (node_id id : c.ids())
    if (c.is_up(id)) up.push_back(id);
  REQUIRE(up.size() == 2);
  std::map<node_id, index_t> commit_before;
  for (node_id id : up) commit_before[id] = c.node(id).commit_index();
  std::vector<prop> attempts;
  for (int k = 0; k < 20; ++k) {
    for (node_id id : up) attempts.push_back(c.propose(id, kv::put("c" + std::to_string(k), "3")));
    c.run_for(250ms);
  }
  // Check: nothing commits for 5 s, and (CheckQuorum) nobody stays leader.
  for (const auto& p : attempts) CHECK_FALSE(p->succeeded());
  for (node_id id : up) {
    CAPTURE(id);
    CHECK(c.node(id).commit_index() == commit_before[id]);
  }
  CHECK_FALSE(c.leader().has_value());

  // Action 3: one node comes back. Check: three of five commit again, with everything before.
  c.restart(third);
  CHECK(commit(c, "d", "4"));
  REQUIRE(settle(c));
  for (node_id id : c.ids()) {
    if (!c.is_up(id)) continue;
    CAPTURE(id);
    CHECK(c.state_machine(id).find("a") == some("1"));
    CHECK(c.state_machine(id).find("b") == some("2"));
    CHECK(c.state_machine(id).find("d") == some("4"));
  }
}

TEST_CASE("restarting every node keeps every committed entry") {
  // Set-up: 20 committed puts, applied everywhere.
  cluster<> c(3, 6105);
  for (int k = 0; k < 20; ++k) REQUIRE(commit(c, "k" + std::to_string(k % 7), std::to_string(k)));
  REQUIRE(settle(c));
  std::map<node_id, std::map<std::string, std::string>> data;
  std::map<node_id, std::uint64_t> hash;
  for (node_id id : c.ids()) {
    data[id] = c.state_machine(id).data();
    hash[id] = c.state_machine(id).hash();
  }

  // Action: every node crashes, then every node restarts (fresh state machines).
  for (node_id id : c.ids()) c.crash(id);
  for (node_id id : c.ids()) c.restart(id);
  REQUIRE(settle(c));

  // Check: the state machines re-applied the same commands at the same indices.
  for (node_id id : c.ids()) {
    CAPTURE(id);
    CHECK(c.state_machine(id).data() == data[id]);
    CHECK(c.state_machine(id).hash() == hash[id]);
    CHECK(c.state_machine(id).applied_count() == 20);
  }
  CHECK(commit(c, "after", "restart"));
}

TEST_CASE("a lossy, duplicating and reordering network still converges with every acknowledged write") {
  // Set-up: 5 nodes; 20% loss, 20% duplicates, delays of 1-20 ms (so messages overtake each other).
  cluster<> c(5, 6106);
  c.network().faults = network_faults{0.2, 0.2, 1ms, 20ms};
  std::vector<std::pair<std::string, std::string>> acknowledged;

  // Action: 60 writes, each through the leader of the moment, each waited for (up to 5 s).
  for (int k = 0; k < 60; ++k) {
    const std::string key = "k" + std::to_string(k), value = "v" + std::to_string(k);
    const prop p = c.propose(c.wait_for_leader(30s), kv::put(key, value));
    c.run_until([&] { return p->done(); }, 5s);
    if (p->succeeded()) acknowledged.emplace_back(key, value);
  }

  // Check: most writes got through; with the faults still on, every node converges and holds
  // every acknowledged write.
  CHECK(acknowledged.size() >= 45);
  REQUIRE(settle(c, 60s));
  for (node_id id : c.ids()) {
    CAPTURE(id);
    for (const auto& [key, value] : acknowledged) CHECK(c.state_machine(id).find(key) == value);
    CHECK(c.state_machine(id).hash() == c.state_machine(*c.leader()).hash());
  }
  CHECK(c.network().counters().dropped > 100);
  CHECK(c.network().counters().duplicated > 100);
}

TEST_CASE("PreVote: a rejoining partitioned node does not bump the term or depose the leader") {
  options o;
  bool pre_vote = true;
  SUBCASE("with PreVote (and CheckQuorum)") {}
  SUBCASE("without PreVote or CheckQuorum (control: the rejoining node disrupts)") {
    pre_vote = false;
    o.pre_vote = false;
    o.check_quorum = false;
  }
  CAPTURE(pre_vote);

  // Set-up: a settled 3-node cluster.
  cluster<> c(3, 6107, o);
  const node_id leader = c.wait_for_leader();
  REQUIRE(commit(c, "a", "1"));
  REQUIRE(settle(c));
  const term_t term = c.node(leader).term();
  const node_id lonely = other_than(c, leader);

  // Action 1: a follower is cut off for 3 s (many election timeouts).
  c.network().isolate(lonely, c.ids());
  c.run_for(3s);
  const term_t term_while_isolated = c.node(lonely).term();

  // Action 2: it comes back half-way: it reaches everyone and hears the other follower, but
  // not the leader yet, so it keeps timing out and campaigning against a healthy cluster.
  c.network().heal();
  c.network().cut(leader, lonely);
  c.run_for(2s);
  const term_t term_half_back = c.node(lonely).term();
  const auto leader_half_back = c.leader();

  // Action 3: fully back.
  c.network().heal();
  c.run_for(2s);

  if (pre_vote) {
    // Check (§9.6): pre-votes never change a term, and the other follower, hearing from the
    // leader, refuses them; the same leader leads the same term throughout.
    CHECK(term_while_isolated == term);
    CHECK(term_half_back == term);
    CHECK(leader_half_back == leader);
    CHECK(c.leader() == leader);
    for (node_id id : c.ids()) {
      CAPTURE(id);
      CHECK(c.node(id).term() == term);
    }
  } else {
    // Control: each timeout bumped the term, and the higher term deposed the leader.
    CHECK(term_while_isolated > term);
    CHECK(term_half_back > term_while_isolated);
    REQUIRE(c.leader().has_value());
    CHECK(c.node(*c.leader()).term() > term);
    for (node_id id : c.ids()) CHECK(c.node(id).term() > term);
  }
  CHECK(commit(c, "b", "2"));
}

TEST_CASE("CheckQuorum: a node that hears from a live leader ignores higher-term vote requests") {
  // Set-up: no PreVote, so a cut-off node bumps its term at every timeout; CheckQuorum on.
  options o;
  o.pre_vote = false;
  cluster<> c(3, 6114, o);
  const node_id leader = c.wait_for_leader();
  REQUIRE(settle(c));
  const term_t term = c.node(leader).term();
  const node_id lonely = other_than(c, leader), other = other_than(c, leader, 1);
  c.network().isolate(lonely, c.ids());
  c.run_for(1s);
  REQUIRE(c.node(lonely).term() > term);

  // Action: it reaches the others again, but still does not hear the leader, so it keeps
  // asking for votes in ever higher terms.
  std::size_t requests = 0;
  c.network().on_send = [&](const message& m) {
    if (m.from == lonely && m.body.holds<vote_request>()) ++requests;
  };
  c.network().heal();
  c.network().cut(leader, lonely);
  c.run_for(2s);

  // Check (§4.2.3): the follower and the leader ignore them: no term changes, same leader.
  CHECK(requests >= 10);
  CHECK(c.node(other).term() == term);
  CHECK(c.node(leader).term() == term);
  CHECK(c.leader() == leader);
  CHECK(c.node(other).leader() == leader);
  c.network().on_send = nullptr;
}

TEST_CASE("a leader refuses proposals beyond max_pending_proposals with errc::busy") {
  // Set-up: a leader that cannot commit (cut off), allowing two pending proposals.
  options o;
  o.max_pending_proposals = 2;
  o.check_quorum = false;
  cluster<> c(3, 6115, o);
  const node_id leader = c.wait_for_leader();
  REQUIRE(settle(c));
  c.network().isolate(leader, c.ids());

  // Action: three proposals.
  const prop p1 = c.propose(leader, kv::put("a", "1"));
  const prop p2 = c.propose(leader, kv::put("b", "2"));
  const prop p3 = c.propose(leader, kv::put("c", "3"));
  c.run_for(10ms);

  // Check: the third is refused at once, the first two wait.
  CHECK_FALSE(p1->done());
  CHECK_FALSE(p2->done());
  REQUIRE(p3->done());
  CHECK(error_of(*p3->outcome) == errc::busy);
}

TEST_CASE("CheckQuorum: an isolated leader steps down; without CheckQuorum it stays leader") {
  options o;
  bool check_quorum = true;
  SUBCASE("with CheckQuorum") {}
  SUBCASE("without CheckQuorum (control: it stays leader)") {
    check_quorum = false;
    o.check_quorum = false;
  }
  CAPTURE(check_quorum);

  // Set-up.
  cluster<> c(3, 6108, o);
  const node_id leader = c.wait_for_leader();
  REQUIRE(commit(c, "a", "1"));
  c.run_for(77ms);

  // Action: the leader is cut off from everyone.
  c.network().isolate(leader, c.ids());
  const bool stepped_down = c.run_until([&] { return c.node(leader).role() != role::leader; }, 5s);

  // Check (§6.2): it steps down within a few election timeouts (the precise bound is the
  // next test case); without CheckQuorum it leads on, alone.
  if (check_quorum) {
    REQUIRE(stepped_down);
    CHECK(c.node(leader).role() == role::follower);
  } else {
    CHECK_FALSE(stepped_down);
    CHECK(c.node(leader).role() == role::leader);
  }
  // Either way, the other two elect a leader of a later term.
  CHECK(c.run_until([&] { auto l = c.leader(); return l && *l != leader; }, 5s));
}

// May fail: library bug, see the report. The first CheckQuorum check of a new leader waits for
// the election deadline it had as a follower (up to election_timeout_max after its campaign
// began), not election_timeout_min after it became leader: become_leader() moves
// election_deadline_ earlier without re-arming election_timer_.
TEST_CASE("CheckQuorum: an isolated leader steps down within two checking periods") {
  // Set-up: a leader isolated 80 ms into its term.
  options o;
  cluster<> c(3, 6108, o);
  const node_id leader = c.wait_for_leader();
  REQUIRE(commit(c, "a", "1"));
  c.run_for(77ms);

  // Action.
  const auto start = c.now();
  c.network().isolate(leader, c.ids());
  REQUIRE(c.run_until([&] { return c.node(leader).role() != role::leader; }, 5s));

  // Check (§6.2): the leader checks for a quorum every election_timeout_min; the first check
  // after the cut may still count acknowledgements from before it, the second cannot.
  CHECK(c.now() - start <= 2 * o.election_timeout_min);
}

#if defined(NODE_TEST_HEAP_IN_USE)
// May fail: library bug, see the report. Every election round a node starts while it cannot
// reach anyone leaves the previous round's campaign() coroutine suspended on round_signal_
// (nothing wakes it until some vote reply arrives), so memory grows with every timeout.
TEST_CASE("a node cut off from the cluster campaigns in bounded memory") {
  auto heap_in_use = [] { return static_cast<std::int64_t>(mallinfo2().uordblks); };
  options o;
  SUBCASE("with PreVote") {}
  SUBCASE("without PreVote") { o.pre_vote = false; }
  CAPTURE(o.pre_vote);

  // Set-up: a settled cluster; memory is flat while it idles (the control).
  cluster<> c(3, 6113, o);
  const node_id leader = c.wait_for_leader();
  REQUIRE(settle(c));
  const node_id lonely = other_than(c, leader);
  c.run_for(10s);
  const std::int64_t idle_before = heap_in_use();
  c.run_for(600s);
  const std::int64_t idle_after = heap_in_use();
  CHECK(idle_after - idle_before < 16 * 1024);

  // Action: a follower is cut off for 10 minutes: about 2,700 election timeouts.
  c.network().isolate(lonely, c.ids());
  c.run_for(10s);
  const std::int64_t cut_before = heap_in_use();
  c.run_for(600s);
  const std::int64_t cut_after = heap_in_use();

  // Check: its memory does not grow with the number of rounds.
  CAPTURE(cut_after - cut_before);
  CHECK(cut_after - cut_before < 64 * 1024);
  c.network().heal();
  c.run_for(3s);  // without PreVote, the node's much higher term forces a new election first
  CHECK(commit(c, "b", "1"));
}
#endif

namespace {

/// Messages sent by a settled, idle `n`-node cluster during `window`, optionally with one
/// proposal at the start of the window. The same seed makes both runs alike but for the proposal.
std::uint64_t messages_in_window(std::size_t n, bool propose, std::chrono::milliseconds window) {
  cluster<> c(n, 6109 + n);
  c.wait_for_leader();
  REQUIRE(settle(c));
  // A fixed delay, so that the two runs keep the same timing even though the proposal's
  // messages draw from the network's generator.
  c.network().faults.min_delay = c.network().faults.max_delay = 1ms;
  c.run_for(1s);  // idle from here on
  const std::uint64_t before = c.network().counters().sent;
  const std::uint64_t votes_before = c.network().counters().vote_requests;
  prop p;
  if (propose) p = c.propose(*c.leader(), kv::put("a", "1"));
  c.run_for(window);
  if (propose) REQUIRE(p->succeeded());
  CHECK(c.network().counters().vote_requests == votes_before);  // no election in the window
  return c.network().counters().sent - before;
}

}  // namespace

TEST_CASE("an idle cluster sends about 2(n-1) messages per heartbeat interval") {
  for (std::size_t n : {3u, 5u}) {
    CAPTURE(n);
    const options o;
    const auto window = 10s;
    const std::uint64_t intervals = window / o.heartbeat_interval;  // 200
    const std::uint64_t sent = messages_in_window(n, false, window);
    // One heartbeat to each follower and one reply from each, per interval.
    CHECK(sent <= 2 * (n - 1) * (intervals + 1));
    CHECK(sent >= 2 * (n - 1) * (intervals - 1));
  }
}

TEST_CASE("one agreement costs a small constant number of messages beyond heartbeats") {
  for (std::size_t n : {3u, 5u}) {
    CAPTURE(n);
    const std::uint64_t idle = messages_in_window(n, false, 1s);
    const std::uint64_t busy = messages_in_window(n, true, 1s);
    CAPTURE(idle);
    CAPTURE(busy);
    // AppendEntries to each follower and its reply; the commit index rides on heartbeats.
    CHECK(busy >= idle);
    CHECK(busy - idle <= 2 * (n - 1) + 2);
  }
}

TEST_CASE("not_leader errors carry the leader hint") {
  // Set-up.
  cluster<> c(3, 6110);
  const node_id leader = c.wait_for_leader();
  REQUIRE(settle(c));
  const node_id follower = other_than(c, leader);

  // Action: a client asks a follower.
  const prop p = c.propose(follower, kv::put("a", "1"));
  c.run_for(1ms);

  // Check.
  REQUIRE(p->done());
  REQUIRE_FALSE(p->succeeded());
  CHECK(p->outcome->error().code == errc::not_leader);
  CHECK(p->outcome->error().leader_hint == leader);
  // A retry at the hinted node succeeds.
  const prop again = c.propose(p->outcome->error().leader_hint, kv::put("a", "1"));
  REQUIRE(c.run_until([&] { return again->done(); }, 1s));
  CHECK(again->succeeded());
}

TEST_CASE("stop() completes pending proposals with errc::stopped") {
  // Set-up: a leader cut off from its followers, so its proposals stay pending.
  cluster<> c(3, 6111);
  const node_id leader = c.wait_for_leader();
  REQUIRE(settle(c));
  c.network().isolate(leader, c.ids());
  const prop p1 = c.propose(leader, kv::put("a", "1"));
  const prop p2 = c.propose(leader, kv::put("b", "2"));
  c.run_for(10ms);
  REQUIRE_FALSE(p1->done());
  REQUIRE_FALSE(p2->done());

  // Action: stop the leader.
  bool stopped = false;
  asio::co_spawn(c.context(), c.node(leader).async_stop(), [&](std::exception_ptr e) {
    CHECK_FALSE(e);
    stopped = true;
  });
  c.run_for(10ms);

  // Check: stop() finished, and every pending proposal completed with errc::stopped.
  CHECK(stopped);
  REQUIRE(p1->done());
  REQUIRE(p2->done());
  CHECK(error_of(*p1->outcome) == errc::stopped);
  CHECK(error_of(*p2->outcome) == errc::stopped);
  CHECK(c.node(leader).stopping());
  // A proposal to a stopped node fails the same way.
  const prop p3 = c.propose(leader, kv::put("c", "3"));
  c.run_for(1ms);
  REQUIRE(p3->done());
  CHECK(error_of(*p3->outcome) == errc::stopped);
}

TEST_CASE("a message with the largest possible term is dropped, not adopted (the term would wrap)") {
  cluster<> c(3, 77);
  const node_id leader = c.wait_for_leader();
  const term_t before = c.node(leader).term();
  for (node_id to : c.ids())
    c.network().inject(message{node_id{9}, to, vote_response{term_t{~std::uint64_t{0}}, false, false}});
  c.run_for(std::chrono::seconds(2));
  for (node_id id : c.ids()) CHECK(c.node(id).term() == before);
  CHECK(c.leader() == leader);
  CHECK(commit(c, "after", "ok"));
}
