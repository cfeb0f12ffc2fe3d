// The async_ operations as Asio operations: their completion tokens and per-operation
// cancellation (a connected cancellation slot completes an operation early with
// errc::cancelled while the node carries on with it), on the simulated cluster.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <variant>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "ops_support.hpp"

namespace async_ops_test {

using namespace node_test;
using asio::experimental::awaitable_operators::operator||;
using node_type = cluster<>::node_type;
using put_result = result<node_type::result_type>;

template <class Token>
concept read_token = requires(node_type& n, Token token) { n.async_read_barrier(std::move(token)); };

// The default token makes every operation an asio::awaitable; a token that is none is refused.
static_assert(std::is_same_v<decltype(std::declval<node_type&>().async_read_barrier()), asio::awaitable<result<index_t>>>);
static_assert(std::is_same_v<decltype(std::declval<node_type&>().async_stop()), asio::awaitable<void>>);
static_assert(read_token<asio::use_awaitable_t<>>);
static_assert(!read_token<int>);

/// Sleeps on `timer` for `d` of virtual time.
asio::awaitable<void> sleep_on(virtual_timer& timer, virtual_clock::duration d) {
  timer.expires_after(d);
  co_await timer.async_wait(asio::use_awaitable);
}

/// Races a proposal against `timer` (expiring after `d`): which won, and when the race ended.
struct race {
  std::optional<std::variant<put_result, std::monostate>> winner;
  virtual_clock::time_point ended{};
};

asio::awaitable<void> propose_against_timer(node_type& n, buffer cmd, virtual_timer& timer,
                                            virtual_clock::duration d, race& out) {
  timer.expires_after(d);
  out.winner = co_await (n.async_propose(cmd.bytes()) || timer.async_wait(asio::use_awaitable));
  out.ended = virtual_clock::now();
}

/// Proposes `cmd` and records what the proposal completed with.
asio::awaitable<void> propose_recording(node_type& n, buffer cmd, std::optional<put_result>& out) {
  out = co_await n.async_propose(cmd.bytes());
}

/// Transfers leadership to `target` and records what the transfer completed with.
asio::awaitable<void> transfer_recording(node_type& n, node_id target, std::optional<result<node_id>>& out) {
  out = co_await n.async_transfer_leadership(target);
}

/// Runs `task` on the cluster's io_context until it has finished (or `limit` passes); whether it
/// finished without an exception. What it returns, if anything, is dropped.
template <class T>
bool run_task(cluster<>& c, asio::awaitable<T> task, virtual_clock::duration limit = std::chrono::seconds(5)) {
  bool finished = false;
  bool threw = false;
  asio::co_spawn(c.context(), std::move(task), [&](std::exception_ptr e, auto&&...) {
    finished = true;
    threw = e != nullptr;
  });
  return c.run_until([&] { return finished; }, limit) && !threw;
}

/// The leader of a three-node cluster, cut off from its followers: nothing it starts can
/// finish until the network heals (well within an election timeout, so it keeps leading).
node_id isolated_leader(cluster<>& c) {
  const node_id leader = c.wait_for_leader();
  c.network().isolate(leader, c.ids());
  return leader;
}

TEST_CASE("async_propose raced against a timer: the timer wins at its instant, and the proposal may still commit") {
  cluster<> c(3, 61);
  const node_id leader = isolated_leader(c);
  node_type& n = c.node(leader);
  const index_t last_before = n.log().last_index();
  virtual_timer timer(c.context().get_executor());
  race out;
  const auto started = c.now();

  REQUIRE(run_task(c, propose_against_timer(n, kv_state_machine::put("raced", "1"), timer, 20ms, out)));
  REQUIRE(out.winner.has_value());
  CHECK(out.winner->index() == 1);           // the timer's alternative
  CHECK(out.ended - started == 20ms);        // not a moment later: the proposal did not hold it up
  REQUIRE(n.log().last_index() == last_before.next());  // the entry is in the leader's log

  // Cancelling did not withdraw the entry: once the followers hear from the leader, it commits
  // and is applied, and the node drops its own completion of the proposal.
  c.network().heal();
  CHECK(c.run_until([&] { return c.state_machine(leader).find("raced") == std::optional<std::string>("1"); }, 1s));
  CHECK(c.node(leader).metrics().pending_proposals == 0);
}

TEST_CASE("a proposal cancelled by the awaitable operators completes with errc::cancelled, whose text says the outcome is unknown") {
  cluster<> c(3, 62);
  const node_id leader = isolated_leader(c);
  virtual_timer timer(c.context().get_executor());
  std::optional<put_result> proposed;

  REQUIRE(run_task(c, propose_recording(c.node(leader), kv_state_machine::put("k", "v"), proposed) ||
                          sleep_on(timer, 30ms)));
  REQUIRE(proposed.has_value());
  REQUIRE_FALSE(proposed->has_value());
  CHECK(proposed->error().code == errc::cancelled);
  const std::string text = proposed->error().message();
  CHECK(text.find("unknown") != std::string::npos);
  CHECK(text.find("not applied") == std::string::npos);
}

TEST_CASE("an operation whose slot is connected but not emitted on completes as usual") {
  cluster<> c(3, 63);
  const node_id leader = c.wait_for_leader();
  node_type& n = c.node(leader);

  SUBCASE("through the awaitable operators: the proposal wins the race with its value") {
    virtual_timer timer(c.context().get_executor());
    race out;
    REQUIRE(run_task(c, propose_against_timer(n, kv_state_machine::put("a", "1"), timer, 1s, out)));
    REQUIRE(out.winner.has_value());
    REQUIRE(out.winner->index() == 0);
    CHECK(std::get<0>(*out.winner).has_value());
    CHECK(c.state_machine(leader).find("a") == std::optional<std::string>("1"));
  }

  SUBCASE("through a bound slot: a request after completion is dropped") {
    asio::cancellation_signal cancel;
    int calls = 0;
    std::optional<result<index_t>> read;
    n.async_read_barrier(asio::bind_cancellation_slot(cancel.slot(), [&](result<index_t> r) {
      ++calls;
      read = std::move(r);
    }));
    REQUIRE(c.run_until([&] { return read.has_value(); }, 1s));
    CHECK(read->has_value());
    cancel.emit(asio::cancellation_type::terminal);
    c.run_for(100ms);
    CHECK(calls == 1);
    CHECK(read->has_value());
  }
}

TEST_CASE("a read barrier cancelled through its slot completes with errc::cancelled, never inside emit()") {
  cluster<> c(3, 64);
  const node_id leader = isolated_leader(c);  // no heartbeat round can be confirmed
  asio::cancellation_signal cancel;
  int calls = 0;
  std::optional<result<index_t>> read;
  c.node(leader).async_read_barrier(asio::bind_cancellation_slot(cancel.slot(), [&](result<index_t> r) {
    ++calls;
    read = std::move(r);
  }));
  c.run_for(10ms);
  REQUIRE_FALSE(read.has_value());

  // Emitted from a handler on the node's executor: the completion is posted, not made inside.
  bool completed_inside_emit = true;
  asio::post(c.context(), [&] {
    cancel.emit(asio::cancellation_type::terminal);
    completed_inside_emit = read.has_value();
  });
  REQUIRE(c.run_until([&] { return read.has_value(); }, 0ms));  // no virtual time passes
  CHECK_FALSE(completed_inside_emit);
  CHECK(error_of(read) == errc::cancelled);

  // The read goes on inside the node; once confirmed, its completion is dropped.
  c.network().heal();
  CHECK(c.run_until([&] { return c.node(leader).metrics().pending_reads == 0; }, 1s));
  CHECK(calls == 1);
  CHECK(error_of(read) == errc::cancelled);
}

TEST_CASE("a handler bound to another executor runs there, which stays busy until it has") {
  cluster<> c(3, 69);
  const node_id leader = isolated_leader(c);
  asio::io_context other;
  std::optional<result<index_t>> read;
  c.node(leader).async_read_barrier(asio::bind_executor(other, [&](result<index_t> r) { read = std::move(r); }));
  c.run_for(10ms);
  other.poll();
  CHECK_FALSE(other.stopped());  // out of handlers, not out of work: the read is pending

  c.network().heal();
  REQUIRE(c.run_until([&] { return c.node(leader).metrics().pending_reads == 0; }, 1s));
  CHECK_FALSE(read.has_value());  // queued on `other`
  other.poll();
  REQUIRE(read.has_value());
  CHECK(read->has_value());
  other.poll();
  CHECK(other.stopped());  // nothing keeps it busy any more
}

TEST_CASE("a request for total cancellation is ignored: the node cannot undo what it started") {
  cluster<> c(3, 65);
  const node_id leader = isolated_leader(c);
  asio::cancellation_signal cancel;
  std::optional<result<index_t>> read;
  c.node(leader).async_read_barrier(
      asio::bind_cancellation_slot(cancel.slot(), [&](result<index_t> r) { read = std::move(r); }));
  c.run_for(10ms);
  cancel.emit(asio::cancellation_type::total);
  c.run_for(10ms);
  CHECK_FALSE(read.has_value());

  c.network().heal();
  REQUIRE(c.run_until([&] { return read.has_value(); }, 1s));
  CHECK(read->has_value());
}

TEST_CASE("a cancelled transfer completes with errc::cancelled and goes on until it times out") {
  cluster<> c(3, 66);
  const node_id leader = c.wait_for_leader();
  node_id target = no_node;
  for (node_id id : c.ids())
    if (id != leader) target = id;
  c.crash(target);  // the transfer cannot succeed: it would time out after an election timeout
  virtual_timer timer(c.context().get_executor());
  std::optional<result<node_id>> moved;
  const auto started = c.now();

  REQUIRE(run_task(c, transfer_recording(c.node(leader), target, moved) || sleep_on(timer, 50ms)));
  REQUIRE(moved.has_value());
  REQUIRE_FALSE(moved->has_value());
  CHECK(moved->error().code == errc::cancelled);
  CHECK(c.now() - started == 50ms);

  // The transfer itself runs on: proposals are refused until it gives up, then accepted again.
  auto refused = c.propose(leader, kv_state_machine::put("during", "x"));
  REQUIRE(c.run_until([&] { return refused->done(); }, 1s));
  CHECK(refused->outcome->error().code == errc::transferring);
  c.run_for(400ms);  // past the transfer's deadline (the election timeout maximum)
  CHECK(c.leader() == leader);
  auto accepted = c.propose(leader, kv_state_machine::put("after", "y"));
  REQUIRE(c.run_until([&] { return accepted->done(); }, 1s));
  CHECK(accepted->succeeded());
  CHECK(moved->error().code == errc::cancelled);  // the node's own completion was dropped
}

TEST_CASE("a cancelled membership change completes with errc::cancelled and may still take effect") {
  cluster<> c(3, 67);
  const node_id leader = c.wait_for_leader();
  c.add_node(node_id{4});
  REQUIRE(c.run_until([&] { return c.node(leader).commit_index() == c.node(leader).log().last_index(); }, 1s));
  c.network().isolate(leader, c.ids());
  asio::cancellation_signal cancel;
  std::optional<result<index_t>> added;
  c.node(leader).async_add_learner(node_id{4}, asio::bind_cancellation_slot(cancel.slot(), [&](result<index_t> r) {
    added = std::move(r);
  }));
  c.run_for(10ms);
  REQUIRE_FALSE(added.has_value());
  cancel.emit(asio::cancellation_type::partial);
  REQUIRE(c.run_until([&] { return added.has_value(); }, 0ms));
  CHECK(error_of(added) == errc::cancelled);

  c.network().heal();
  CHECK(c.run_until([&] { return c.node(leader).status().config.is_member(node_id{4}) &&
                                 c.node(leader).commit_index() >= c.node(leader).log().last_index(); },
                    1s));
  CHECK(error_of(added) == errc::cancelled);
}

TEST_CASE("async_stop takes any completion token: a callback runs once the node has stopped") {
  cluster<> c(3, 68);
  const node_id leader = c.wait_for_leader();
  node_id follower = no_node;
  for (node_id id : c.ids())
    if (id != leader) follower = id;
  int stopped = 0;
  c.node(follower).async_stop([&] { ++stopped; });
  CHECK(stopped == 0);  // never inside the call
  REQUIRE(c.run_until([&] { return stopped > 0; }, 1s));
  CHECK(stopped == 1);
  CHECK(c.node(follower).stopping());
  c.crash(follower);  // the cluster stops it once more (stopping twice is fine), then removes it
  auto p = c.propose(leader, kv_state_machine::put("b", "2"));
  REQUIRE(c.run_until([&] { return p->done(); }, 1s));
  CHECK(p->succeeded());
}

}  // namespace async_ops_test
