// Client sessions (raft/sessions.hpp) on the simulated cluster: a proposal whose outcome the
// client never learned, retried with the same session sequence, is applied exactly once on
// every node, through leader crashes at the worst moment and a lossy, duplicating network.
//
// The seeds are printed. Replay:
//   RAFT_TEST_SEED=S                   the seed of the crash-before-reply scenario
//   RAFT_TEST_SEED=S RAFT_SEEDS=1      one seed of the randomized test (default: 100 seeds)
#include <doctest/doctest.h>

// Standard headers before any Asio header (see test_scenarios.cpp).
#include "node_support.hpp"

#include <random>

#include "raft/sessions.hpp"

using namespace node_test;

namespace {

using kv = kv_state_machine;
using ssm = session_state_machine<kv>;
using scluster = cluster<ssm>;
using sresult = session_result<std::string>;
using sprop = std::shared_ptr<proposal<sresult>>;

static_assert(std::is_same_v<scluster::result_type, sresult>);

/// True if one of the last `depth` entries of `log` carries `command`.
bool holds_recent(const in_memory_log& log, const buffer& command, std::uint64_t depth = 64) {
  for (index_t i = log.last_index(); i >= log.first_index() && i > index_t{0} && depth-- > 0; i = i.prev())
    if (log.at(i).data == command) return true;
  return false;
}

/// How many nodes other than `except` are up and hold `command` near the end of their log.
std::size_t holders(scluster& c, const buffer& command, node_id except) {
  std::size_t n = 0;
  for (node_id id : c.ids())
    if (id != except && c.is_up(id) && holds_recent(c.node(id).log(), command)) ++n;
  return n;
}

std::size_t count_of(const std::string& text, const std::string& piece) {
  std::size_t n = 0;
  for (auto at = text.find(piece); at != std::string::npos; at = text.find(piece, at + piece.size())) ++n;
  return n;
}

/// Proposes `command` through the current leader until a proposal succeeds (a raft error means
/// the outcome is unknown: propose the same bytes again). Returns the state machine's result.
sresult propose_until_applied(scluster& c, const buffer& command, int& attempts) {
  for (attempts = 1; attempts <= 100; ++attempts) {
    const sprop p = c.propose(c.wait_for_leader(), command);
    c.run_until([&] { return p->done(); }, 2s);
    if (p->succeeded()) return p->outcome->value();
  }
  throw std::runtime_error(c.describe("no attempt of the proposal succeeded"));
}

client_id register_session(scluster& c) {
  int attempts = 0;
  const sresult r = propose_until_applied(c, session_register(), attempts);
  REQUIRE(r.outcome() == sresult::kind::registered);
  return r.registered_id();
}

}  // namespace

TEST_CASE("a proposal whose leader crashed before replying is retried on the new leader and applied once") {
  bool with_session = true;
  SUBCASE("with a session: applied once; the retry gets the cached result") {}
  SUBCASE("control, sessionless: the same retry applies the command twice") { with_session = false; }
  CAPTURE(with_session);
  const std::uint64_t seed = env_u64("RAFT_TEST_SEED", 7301);
  CAPTURE(seed);
  MESSAGE("sessions crash-before-reply scenario: seed " << seed << " (replay with RAFT_TEST_SEED=" << seed << ")");

  // Set-up: 5 nodes on a lossy, duplicating network; a session; one committed request.
  scluster c(5, seed);
  c.network().faults.drop = 0.1;
  c.network().faults.duplicate = 0.1;
  c.network().faults.max_delay = 3ms;
  const client_id id = register_session(c);
  session_client s(id);
  int attempts = 0;
  CHECK(propose_until_applied(c, s.next(kv::append("log", "a")), attempts).value() == "a");

  // Action: APPEND "x" through the leader. Once two followers hold it (so it survives and will
  // commit under the next leader) but before the leader has replied, the leader crashes.
  const buffer x = kv::append("log", "x");
  const buffer frame = with_session ? s.next(x) : sessionless_command(x);
  const node_id old = c.wait_for_leader();
  const sprop first = c.propose(old, frame);
  REQUIRE(c.run_until([&] { return holders(c, frame, old) >= 2 || first->done(); }, 5s));
  REQUIRE_FALSE(first->done());
  c.crash(old);
  // The client learns nothing useful: the proposal ended without a result.
  REQUIRE(first->done());
  CHECK_FALSE(first->succeeded());
  CHECK(error_of(*first->outcome) == errc::stopped);

  // The client retries the same bytes on whoever leads now.
  const sresult r = propose_until_applied(c, frame, attempts);
  REQUIRE(r.has_value());
  if (with_session) {
    CHECK(r.replayed());           // the first attempt had been applied: the cached result
    CHECK(r.value() == "ax");
  } else {
    CHECK(r.value() == "axx");     // applied twice: what sessions prevent
  }

  // Check: every node, the crashed one too once it replays its log, holds "x" exactly once
  // with a session (twice without).
  c.restart(old);
  c.network().faults = network_faults{};
  REQUIRE(settle(c));
  for (node_id n : c.ids()) {
    CAPTURE(n);
    const auto v = c.state_machine(n).inner().find("log");
    REQUIRE(v);
    CHECK(count_of(*v, "x") == (with_session ? 1u : 2u));
    CHECK(c.state_machine(n).inner().hash() == c.state_machine(c.ids().front()).inner().hash());
    if (with_session) CHECK(c.state_machine(n).session(id) == c.state_machine(c.ids().front()).session(id));
  }
}

TEST_CASE("a retry of an evicted session is reported expired, on every node, and not applied again") {
  // Tables of two sessions: registering two more evicts the first.
  struct small_table : ssm {
    small_table() : ssm(2) {}
  };
  cluster<small_table> c(3, 7302);
  auto propose = [&](const buffer& cmd) {
    const auto p = c.propose_and_wait(cmd);
    REQUIRE(p->succeeded());
    return p->outcome->value();
  };
  const client_id a = propose(session_register()).registered_id();
  const buffer a1 = session_command(a, 1, kv::append("log", "a1"));
  CHECK(propose(a1).value() == "a1");
  CHECK(propose(a1).replayed());
  propose(session_register());
  propose(session_register());  // a is the least recently used: evicted

  const sresult retry = propose(a1);
  CHECK(retry.error() == session_errc::expired);
  CHECK(propose(session_command(a, 2, kv::append("log", "a2"))).error() == session_errc::expired);
  REQUIRE(settle(c));
  for (node_id n : c.ids()) {
    CAPTURE(n);
    CHECK(c.state_machine(n).inner().find("log") == std::string("a1"));
    CHECK(c.state_machine(n).session_count() == 2);
    CHECK_FALSE(c.state_machine(n).session(a));
    CHECK(c.state_machine(n).evictions() == 1);
  }
}

namespace {

/// One client: a session, and requests APPEND "<name>.<seq>;" to its own key, one outstanding
/// at a time, each retried with the same bytes until it succeeds.
struct session_driver {
  std::string name;
  std::optional<session_client> session;
  buffer frame;                ///< the request in flight (kept for retries)
  std::string expected;        ///< the key's value once the request in flight is applied
  std::uint64_t completed = 0;
  sprop pending;
  virtual_clock::time_point sent_at{};
  bool in_flight = false;
};

struct random_outcome {
  std::vector<std::string> problems;
  std::uint64_t replays = 0;          ///< retries answered from the cache
  std::uint64_t worst_crashes = 0;    ///< leader crashes with a request held by followers, unanswered
  std::uint64_t retries = 0;
  std::uint64_t dropped = 0;
};

random_outcome run_session_seed(std::uint64_t seed) {
  random_outcome out;
  std::mt19937_64 rng(seed);
  const std::size_t n = rng() % 2 ? 5 : 3;
  const std::size_t max_down = (n - 1) / 2;
  constexpr std::uint64_t requests = 20;
  scluster c(n, seed);
  c.network().faults.drop = 0.05 + double(rng() % 16) / 100;       // 5..20 %
  c.network().faults.duplicate = double(rng() % 21) / 100;         // 0..20 %
  c.network().faults.max_delay = std::chrono::microseconds(1000 + rng() % 4000);

  std::vector<session_driver> clients(3);
  for (std::size_t k = 0; k < clients.size(); ++k) clients[k].name = "c" + std::to_string(k);
  std::map<node_id, virtual_clock::time_point> restart_at;

  auto send = [&](session_driver& d, const buffer& cmd) {
    const auto l = c.leader();
    if (!l) return;
    d.pending = c.propose(*l, cmd);
    d.sent_at = c.now();
    d.in_flight = true;
  };

  const auto deadline = c.now() + 120s;
  for (;;) {
    bool all_done = true;
    for (auto& d : clients) {
      if (d.completed == requests) continue;
      all_done = false;
      const buffer cmd = d.session ? d.frame : session_register();
      if (d.in_flight && d.pending->done()) {
        d.in_flight = false;
        if (d.pending->succeeded()) {
          const sresult& r = d.pending->outcome->value();
          if (!d.session) {
            if (r.outcome() != sresult::kind::registered) out.problems.push_back(d.name + ": register failed");
            else d.session.emplace(r.registered_id());
          } else if (!r.has_value()) {
            out.problems.push_back(d.name + ": request " + std::to_string(d.completed + 1) +
                                   " failed with " + make_error_code(*r.error()).message());
            d.completed = requests;
            continue;
          } else {
            if (r.value() != d.expected)
              out.problems.push_back(d.name + ": request " + std::to_string(d.completed + 1) + " returned \"" +
                                     r.value() + "\", expected \"" + d.expected + "\"");
            if (r.replayed()) ++out.replays;
            ++d.completed;
          }
          if (d.session && d.completed < requests) {  // the next request
            const std::string piece = d.name + "." + std::to_string(d.completed + 1) + ";";
            d.expected += piece;
            d.frame = d.session->next(kv::append(d.name, piece));
            send(d, d.frame);
          }
          continue;
        }
        ++out.retries;  // a raft error: the outcome is unknown; the same bytes again
        send(d, cmd);
      } else if (!d.in_flight || c.now() - d.sent_at > 1s) {
        // Nothing sent yet (no leader then), or no answer for long: send the same bytes again
        // (the earlier attempt may still complete; its answer is ignored).
        if (d.in_flight) ++out.retries;
        send(d, cmd);
      }
    }
    if (all_done || c.now() > deadline) break;

    // Run a slice. Sometimes hunt for the worst moment to crash the leader: a request that a
    // follower already holds, not yet answered.
    std::size_t down = 0;
    for (node_id id : c.ids()) down += c.is_up(id) ? 0 : 1;
    const auto slice = std::chrono::milliseconds(5 + rng() % 20);
    if (down < max_down && rng() % 3 == 0) {
      const bool found = c.run_until(
          [&] {
            const auto l = c.leader();
            if (!l) return false;
            for (const auto& d : clients)
              if (d.session && d.in_flight && !d.pending->done() && holders(c, d.frame, *l) >= 1) return true;
            return false;
          },
          slice);
      if (found) {
        const node_id l = *c.leader();
        c.crash(l);
        restart_at[l] = c.now() + std::chrono::milliseconds(50 + rng() % 400);
        ++out.worst_crashes;
      }
    } else {
      c.run_for(slice);
    }
    for (auto it = restart_at.begin(); it != restart_at.end();) {
      if (it->second <= c.now()) {
        c.restart(it->first);
        it = restart_at.erase(it);
      } else {
        ++it;
      }
    }
  }
  out.dropped = c.network().counters().dropped;

  // Every node up, a healthy network: everything settles.
  for (auto& [id, t] : restart_at) c.restart(id);
  c.network().faults = network_faults{};
  if (!settle(c, 20s)) out.problems.push_back(c.describe("did not settle"));
  for (const auto& d : clients) {
    if (d.completed != requests) {
      out.problems.push_back(d.name + ": only " + std::to_string(d.completed) + " requests completed");
      continue;
    }
    for (node_id id : c.ids()) {
      const auto v = c.state_machine(id).inner().find(d.name);
      if (v != d.expected)
        out.problems.push_back("node " + std::to_string(id.value) + ": " + d.name + " holds \"" +
                               v.value_or("<none>") + "\", expected \"" + d.expected + "\" (each piece once)");
      const auto info = c.state_machine(id).session(d.session->id());
      if (!info || info->last_sequence != requests)
        out.problems.push_back("node " + std::to_string(id.value) + ": " + d.name + "'s session is not at " +
                               std::to_string(requests));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("randomized: retried session requests are applied exactly once under loss and leader crashes") {
  const std::uint64_t first = env_u64("RAFT_TEST_SEED", 9100);
  const std::uint64_t count = env_u64("RAFT_SEEDS", 100);
  MESSAGE("sessions randomized: seeds " << first << ".." << first + count - 1
                                        << " (replay one with RAFT_TEST_SEED=<seed> RAFT_SEEDS=1)");
  std::uint64_t replays = 0, worst = 0, retries = 0, dropped = 0;
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    CAPTURE(seed);
    const random_outcome r = run_session_seed(seed);
    for (const auto& p : r.problems) FAIL_CHECK("seed " << seed << ": " << p);
    replays += r.replays;
    worst += r.worst_crashes;
    retries += r.retries;
    dropped += r.dropped;
  }
  MESSAGE("sessions randomized: " << worst << " leader crashes before a reply, " << retries << " retries, "
                                  << replays << " answered from the cache, " << dropped << " messages lost");
  // The runs exercised what they are meant to: the network lost messages, leaders crashed with
  // a request unanswered, and some retries found their request already applied.
  if (count >= 4) {
    CHECK(dropped > 0);
    CHECK(worst > 0);
    CHECK(replays > 0);
  }
}
