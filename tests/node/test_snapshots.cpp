// Snapshots and log compaction (thesis chapter 5) on the simulated cluster: a follower that
// fell behind the compacted log, chunks lost on the way, restarts from snapshot plus log, a new
// member that catches up by snapshot, crashes in the middle of an install.
#include <doctest/doctest.h>

#include <set>

#include "ops_support.hpp"

using namespace node_test;

namespace {

options snapshotting(std::uint64_t every = 40, std::uint64_t trailing = 10, std::size_t chunk = 256) {
  options o;
  o.snapshot_entries = every;
  o.snapshot_trailing_entries = trailing;
  o.snapshot_chunk_bytes = chunk;
  return o;
}

node_id snapshot_peer_of(const cluster<>& c, node_id not_this) {
  for (node_id id : c.ids())
    if (id != not_this) return id;
  throw std::logic_error("no other node");
}

/// Every node that is up holds the same data and the same applied-command hash as the leader.
void check_replicas_agree(cluster<>& c) {
  // Converged: the leader committed its whole log and every node applied exactly that much.
  REQUIRE_MESSAGE(c.run_until(
                      [&] {
                        auto l = c.leader();
                        if (!l || c.node(*l).commit_index() != c.node(*l).log().last_index()) return false;
                        for (node_id id : c.ids())
                          if (c.is_up(id) && c.node(id).applied_index() != c.node(*l).commit_index()) return false;
                        return true;
                      },
                      std::chrono::seconds(20)),
                  c.describe("did not converge"));
  const node_id l = *c.leader();
  for (node_id id : c.ids()) {
    if (!c.is_up(id)) continue;
    CAPTURE(id);
    const std::string why = std::string(c.describe("state differs")) + " sizes " + std::to_string(c.state_machine(id).data().size()) + " vs " + std::to_string(c.state_machine(l).data().size()) + " count " + std::to_string(c.state_machine(id).applied_count()) + " vs " + std::to_string(c.state_machine(l).applied_count()) + " snap " + std::to_string(c.node(id).status().snapshot_index.value) + " vs " + std::to_string(c.node(l).status().snapshot_index.value);
    CHECK_MESSAGE(c.state_machine(id).data() == c.state_machine(l).data(), why);
    CHECK(c.state_machine(id).hash() == c.state_machine(l).hash());
  }
}

}  // namespace

TEST_CASE("the leader compacts its log and a follower that was partitioned catches up by snapshot") {
  cluster<> c(3, 41, snapshotting());
  const node_id leader = c.wait_for_leader();
  const node_id lagging = snapshot_peer_of(c, leader);
  c.network().isolate(lagging, c.ids());
  REQUIRE(write_some(c, "k", 200, std::chrono::microseconds(200)) == 200);
  c.run_for(std::chrono::milliseconds(100));
  // Snapshots were taken and the log behind them dropped, past what the follower has.
  const auto m = c.node(leader).metrics();
  CHECK(m.snapshots_created >= 3);
  CHECK(m.snapshot_index > index_t{150});
  CHECK(c.node(leader).log().first_index() > c.node(lagging).log().last_index().next());
  CHECK(m.log_entries < 100);
  c.network().heal();
  REQUIRE(c.run_until([&] { return c.node(lagging).applied_index() >= c.node(leader).commit_index(); },
                      std::chrono::seconds(10)));
  CHECK(c.node(lagging).metrics().snapshots_installed >= 1);
  // The leader counts the transfer when the follower's "installed" reaches it, a message later.
  CHECK(c.run_until([&] { return c.node(leader).metrics().snapshots_sent >= 1; }, std::chrono::seconds(1)));
  CHECK(c.state_machine(lagging).find("k0") == "v");
  CHECK(c.state_machine(lagging).find("k199") == "v");
  REQUIRE(write_some(c, "after", 5) == 5);
  check_replicas_agree(c);
}

TEST_CASE("InstallSnapshot with chunks lost resumes from the last acknowledged chunk, never from zero") {
  cluster<> c(3, 42, snapshotting(40, 5, 64));
  const node_id leader = c.wait_for_leader();
  const node_id lagging = snapshot_peer_of(c, leader);
  c.network().isolate(lagging, c.ids());
  REQUIRE(write_some(c, "key-with-some-length-", 150, std::chrono::microseconds(200)) == 150);
  c.run_for(std::chrono::milliseconds(50));
  c.network().heal();

  // Lose every third chunk on its way, and watch what the leader sends against what the
  // follower acknowledged.
  std::mt19937_64 rng(42);
  std::map<std::uint64_t, std::uint64_t> acked;  // snapshot index -> highest offset acknowledged
  std::size_t chunks = 0, resent_below_ack = 0;
  std::set<std::uint64_t> sizes;
  c.network().drop_if = [&](const message& m) {
    if (const auto* r = m.body.get_if<install_snapshot_request>()) {
      ++chunks;
      sizes.insert(r->size);
      if (r->offset < acked[r->meta.index.value]) ++resent_below_ack;
      return rng() % 3 == 0;
    }
    if (const auto* a = m.body.get_if<install_snapshot_response>())
      acked[a->index.value] = std::max(acked[a->index.value], a->next_offset);
    return false;
  };
  REQUIRE(c.run_until([&] { return c.node(lagging).applied_index() >= c.node(leader).commit_index(); },
                      std::chrono::seconds(20)));
  CHECK(c.node(lagging).metrics().snapshots_installed >= 1);
  CHECK(resent_below_ack == 0);
  REQUIRE(!sizes.empty());
  // With a third lost, about 1.5 sends per chunk are needed; restarting from zero would need more.
  const std::size_t needed = (*sizes.begin() + 63) / 64;
  CHECK(chunks < 3 * needed * sizes.size() + 20);
  c.network().drop_if = nullptr;
  check_replicas_agree(c);
}

TEST_CASE("every node restarts from its snapshot plus its log after compaction") {
  cluster<> c(3, 43, snapshotting(30, 5));
  c.wait_for_leader();
  REQUIRE(write_some(c, "k", 120, std::chrono::microseconds(200)) == 120);
  REQUIRE(c.wait_until_converged());
  std::map<node_id, std::uint64_t> hashes;
  for (node_id id : c.ids()) {
    CHECK(c.node(id).metrics().snapshots_created >= 1);
    hashes[id] = c.state_machine(id).hash();
  }
  for (node_id id : c.ids()) c.crash(id);
  for (node_id id : c.ids()) c.restart(id);
  // Right after start, before any new commit, each state machine is back where it was.
  for (node_id id : c.ids()) {
    CHECK(c.node(id).status().snapshot_index > index_t{0});
    CHECK(c.node(id).applied_index() >= c.node(id).status().snapshot_index);
  }
  c.wait_for_leader();
  REQUIRE(write_some(c, "more", 10) == 10);
  check_replicas_agree(c);
  for (node_id id : c.ids()) CHECK(c.state_machine(id).find("k119") == "v");
}

TEST_CASE("a new member catches up through a snapshot, then is promoted") {
  cluster<> c(3, 44, snapshotting(25, 5));
  const node_id leader = c.wait_for_leader();
  REQUIRE(write_some(c, "k", 100, std::chrono::microseconds(200)) == 100);
  c.run_for(std::chrono::milliseconds(50));
  REQUIRE(c.node(leader).log().first_index() > index_t{2});
  c.add_node(node_id{4});
  auto r = await_op<index_t>(c, [&](auto h) { c.node(leader).async_add_learner(node_id{4}, std::move(h)); });
  REQUIRE((r && r->has_value()));
  REQUIRE(c.run_until([&] { return c.node(node_id{4}).applied_index() >= c.node(leader).commit_index(); },
                      std::chrono::seconds(10)));
  CHECK(c.node(node_id{4}).metrics().snapshots_installed == 1);
  CHECK(c.node(node_id{4}).status().config.is_member(node_id{4}));  // from the snapshot's configuration
  r = await_op<index_t>(c, [&](auto h) { c.node(leader).async_promote(node_id{4}, std::move(h)); });
  REQUIRE((r && r->has_value()));
  check_replicas_agree(c);
}

TEST_CASE("crashes during snapshot transfer and install, under a lossy network, lose nothing") {
  const std::uint64_t first = env_u64("RAFT_TEST_SEED", 7300);
  const std::uint64_t count = env_u64("RAFT_SEEDS", 500) / 20 + 1;
  MESSAGE("snapshots under faults: seeds " << first << ".." << first + count - 1
                                           << " (replay with RAFT_TEST_SEED=<seed> RAFT_SEEDS=1)");
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    CAPTURE(seed);
    cluster<> c(3, seed, snapshotting(20, 3, 48));
    c.network().faults.drop = 0.05;
    c.network().faults.duplicate = 0.05;
    std::mt19937_64 rng(seed);
    std::vector<std::pair<std::string, std::shared_ptr<proposal<std::string>>>> writes;
    for (int round = 0; round < 6; ++round) {
      const node_id victim = c.ids()[rng() % 3];
      c.network().isolate(victim, c.ids());
      for (int i = 0; i < 30; ++i) {
        const std::string key = "r" + std::to_string(round) + "-" + std::to_string(i);
        if (auto l = c.leader()) writes.emplace_back(key, c.propose(*l, kv_state_machine::put(key, "v")));
        c.run_for(std::chrono::microseconds(300));
      }
      c.network().heal();
      // Crash somebody at a random moment of the catch-up, and bring it back.
      c.run_for(std::chrono::microseconds(rng() % 30001));
      const node_id crashed = c.ids()[rng() % 3];
      c.crash(crashed);
      c.run_for(std::chrono::milliseconds(1 + rng() % 400));
      c.restart(crashed);
    }
    // One more write once the faults are over (some seeds isolate every leader they write to).
    writes.emplace_back("final", c.propose_and_wait(kv_state_machine::put("final", "v"), std::chrono::seconds(30)));
    REQUIRE(writes.back().second->succeeded());
    REQUIRE_MESSAGE(c.wait_until_converged(std::chrono::seconds(30)), c.describe("did not converge"));
    check_replicas_agree(c);
    // Every acknowledged write is on every node.
    for (const auto& w : writes)
      if (w.second->succeeded())
        for (node_id id : c.ids()) CHECK_MESSAGE(c.state_machine(id).find(w.first) == "v", w.first, " missing on node ", id);
  }
}

TEST_CASE("a partly received snapshot that the log overtakes is dropped, and the node snapshots again") {
  // Node 2 joins with an empty log. The leader (played by hand, with node 1's own log and term)
  // sends it the first chunk of a snapshot and then, instead of the rest, the whole log.
  options o = snapshotting(10, 1000);
  cluster<> c(1, 45, o);
  const node_id one{1}, two{2};
  c.wait_for_leader();
  REQUIRE(write_some(c, "k", 30) == 30);
  const auto& leader = c.node(one);
  const term_t term = leader.term();
  const index_t last = leader.log().last_index();
  REQUIRE(leader.log().first_index() == index_t{1});  // it kept its whole log (1000 trailing)
  c.add_node(two);
  const index_t snap{20};
  c.network().inject(message{one, two, install_snapshot_request{term, snapshot_meta{snap, *leader.log().term_at(snap), leader.status().config}, 0, 1000, buffer::from_string("first chunk")}});
  c.run_for(std::chrono::milliseconds(5));
  REQUIRE(c.node(two).leader() == one);
  append_request all{term, index_t{0}, term_t{0}, leader.commit_index(), {}, 0};
  for (index_t i{1}; i <= last; i = i.next()) all.entries.push_back(leader.log().at(i));
  c.network().inject(message{one, two, std::move(all)});
  c.run_for(std::chrono::milliseconds(5));
  REQUIRE(c.node(two).applied_index() == leader.commit_index());
  // It took a snapshot of its own: the partial one no longer blocks it.
  CHECK(c.node(two).metrics().snapshots_created >= 1);
  CHECK(c.node(two).status().snapshot_index > snap);
}

TEST_CASE("proposals a former leader knew committed, skipped by an installed snapshot, say so") {
  // Leader L's entry X is on both followers, but their acknowledgements are lost. In one batch
  // L then hears a (late) acknowledgement that commits X, and the whole snapshot of a newer
  // leader that covers X: it installs the snapshot without applying X. The proposal committed,
  // and its caller must hear that, not that it was lost.
  options o = snapshotting(0, 1000, 1 << 20);
  cluster<> c(3, 47, o);
  const node_id l = c.wait_for_leader();
  REQUIRE(node_test::settle(c));
  bool injecting = false;
  c.network().drop_if = [&](const message& m) { return m.to == l && !injecting; };
  const term_t t = c.node(l).term();
  const index_t before = c.node(l).log().last_index();
  auto p = c.propose(l, kv_state_machine::put("x", "1"));
  REQUIRE(c.run_until([&] { return c.node(l).log().last_index() > before; }, std::chrono::milliseconds(5)));
  const index_t x = c.node(l).log().last_index();
  std::vector<node_id> followers;
  for (node_id id : c.ids())
    if (id != l) followers.push_back(id);
  REQUIRE(c.run_until([&] {
    for (node_id f : followers)
      if (c.node(f).log().last_index() < x) return false;
    return true;
  }, std::chrono::milliseconds(50)));
  REQUIRE(c.node(l).commit_index() < x);
  REQUIRE_FALSE(p->done());

  // The newer leader's snapshot through x + 1: the state after x, at a term no node has reached.
  kv_state_machine image;
  for (index_t i{1}; i <= x; i = i.next()) {
    const log_entry& e = c.node(followers[0]).log().at(i);
    if (e.kind == entry_kind::command) (void)image.apply(i, e.data.bytes());
  }
  const std::vector<std::byte> bytes = image.snapshot_bytes();
  const term_t newer{t.value + 10};
  c.network().faults.min_delay = c.network().faults.max_delay = std::chrono::milliseconds(1);
  injecting = true;
  c.network().inject(message{followers[0], l, append_response{t, true, x, index_t{0}, index_t{0}, term_t{0}, 0}});
  c.network().inject(message{followers[1], l,
                             install_snapshot_request{newer, snapshot_meta{x.next(), newer, c.node(l).status().config},
                                                      0, bytes.size(), buffer{bytes}}});
  injecting = false;
  c.network().drop_if = [&](const message& m) { return (m.to == l || m.from == l) && !injecting; };
  c.run_for(std::chrono::milliseconds(2));
  REQUIRE(c.node(l).status().snapshot_index == x.next());
  // The newer leader goes on: one more entry commits and is applied.
  injecting = true;
  c.network().inject(message{followers[1], l, append_request{newer, x.next(), newer, x.next().next(),
      {log_entry{newer, x.next().next(), entry_kind::command, kv_state_machine::put("y", "2")}}, 0}});
  injecting = false;
  c.run_for(std::chrono::milliseconds(2));
  REQUIRE(c.node(l).applied_index() == x.next().next());
  REQUIRE(p->done());
  const std::string said = p->outcome->has_value() ? std::string("applied") : p->outcome->error().message();
  CHECK_MESSAGE(error_of(*p->outcome) == errc::committed_result_unknown, said);
}
