// examples/demo.cpp - a three-node Raft cluster in one process, start to finish.
//
// What it shows, in order:
//   1. three nodes boot a brand-new cluster and elect a leader;
//   2. a client proposes key-value commands with `co_await node.async_propose(bytes)`; it deliberately
//      starts on a node that may not be the leader, gets errc::not_leader with a hint, and retries
//      on the hinted leader;
//   3. every replica applies the same commands in the same order (we print all three);
//   4. the leader is stopped; the two survivors elect a new leader and keep accepting writes;
//   5. every node is stopped cleanly, and the program exits 0.
//
// Everything runs on one asio::io_context on one thread, in real time: the timers are ordinary
// asio::steady_timer, so elections take a few hundred milliseconds, as they would on a network.
// A watchdog makes the program fail (exit 1) instead of hanging if anything goes wrong.
//
// Build: ninja -C build demo      Run: build/examples/demo
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <raft/raft.hpp>
#include <raft/testing/kv_state_machine.hpp>

namespace {

using namespace std::chrono_literals;

// -------------------------------------------------------------------------------------------------
// The three things a user supplies, and the node type they make.
//
//   state machine : raft::testing::kv_state_machine - a tiny key-value store shipped with the
//                   library for tests and examples. Its apply(index, bytes) returns a std::string,
//                   so node::async_propose completes with raft::result<std::string>.
//   storage       : raft::memory_storage - keeps term, vote and log in memory (no durability).
//   transport     : raft::local_transport - moves messages between nodes of one process.
// -------------------------------------------------------------------------------------------------
using kv = raft::testing::kv_state_machine;
using node_type = raft::node<kv, raft::memory_storage, raft::local_transport>;

// One cluster member: the node and the three objects it refers to. The node keeps references to
// its state machine, storage and transport, so they live next to it and outlive it.
struct replica {
  replica(asio::io_context& io, raft::local_network& network, raft::node_id id,
          const raft::configuration& founders)
      : transport(network, id, io.get_executor()) {
    raft::options o;
    o.id = id;
    o.bootstrap = founders;  // all founders get the same initial membership {1, 2, 3}
    o.election_timeout_min = 150ms;  // these three are the defaults, spelled out to be seen
    o.election_timeout_max = 300ms;
    o.heartbeat_interval = 50ms;
    // The library is silent unless given a log sink; here it narrates elections and role changes.
    o.logger.min_level = raft::log_level::info;
    o.logger.sink = [](raft::log_level, std::string_view text) {
      std::printf("    [raft] %.*s\n", static_cast<int>(text.size()), text.data());
    };
    node = std::make_unique<node_type>(io.get_executor(), std::move(o), state_machine, storage,
                                       transport);
  }

  kv state_machine;
  raft::memory_storage storage;
  raft::local_transport transport;
  std::unique_ptr<node_type> node;  // declared last: destroyed first, before what it refers to
  bool up = true;                   // false once we stopped it for the failover part
};

using cluster = std::vector<std::unique_ptr<replica>>;

// Sleeps for `d` without blocking the thread (the nodes keep running meanwhile).
asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

// Finds the leader among the running nodes: polls every 10 ms. Two nodes may briefly both think
// they lead (an old leader that has not yet heard of the new term); the higher term wins.
// Reading role() and term() directly is fine here because everything runs on one thread; with
// several threads, read a node's state on its own executor (its strand).
asio::awaitable<replica*> wait_for_leader(cluster& c) {
  for (;;) {
    replica* best = nullptr;
    for (auto& r : c)
      if (r->up && r->node->role() == raft::role::leader &&
          (!best || r->node->term() > best->node->term()))
        best = r.get();
    if (best) co_return best;
    co_await sleep_for(10ms);
  }
}

replica* find(cluster& c, raft::node_id id) {
  for (auto& r : c)
    if (r->node->id() == id && r->up) return r.get();
  return nullptr;
}

// Proposes `command` through `via`, following the leader if `via` is not it. `via` is the
// client's guess of the leader; it is updated to the node that accepted the command, so later
// commands go straight to the leader.
//
// A proposal fails with errc::not_leader when it reached a follower; nothing was appended, so it
// is always safe to send it again, to the leader the follower named in `leader_hint` (or, if
// there is no leader right now, again after a short pause). Other errors are not retried here:
// errc::leadership_lost means the outcome is unknown (the entry may still commit), and retrying a
// non-idempotent command such as `append` could apply it twice. Real clients handle that with
// request ids (sessions); this demo just reports it.
asio::awaitable<raft::result<std::string>> propose(cluster& c, replica*& via, raft::buffer command) {
  for (int attempt = 1;; ++attempt) {
    auto r = co_await via->node->async_propose(command.bytes());
    if (r || r.error().code != raft::errc::not_leader || attempt == 20) co_return r;
    replica* hinted = find(c, r.error().leader_hint);
    std::printf("  node %llu: not the leader (hint: %s), retrying\n",
                static_cast<unsigned long long>(via->node->id().value),
                hinted ? std::to_string(hinted->node->id().value).c_str() : "none yet");
    if (hinted) {
      via = hinted;
    } else {
      co_await sleep_for(50ms);  // an election is under way: give it time, then ask anyone
      via = co_await wait_for_leader(c);
    }
  }
}

// Proposes one command, prints what happened. Returns false if it failed.
asio::awaitable<bool> run_command(cluster& c, replica*& via, std::string_view what,
                                  raft::buffer command) {
  auto r = co_await propose(c, via, std::move(command));
  if (r)
    std::printf("  %-28s -> \"%s\"\n", std::string(what).c_str(), r->c_str());
  else
    std::printf("  %-28s -> error: %s\n", std::string(what).c_str(), r.error().message().c_str());
  co_return static_cast<bool>(r);
}

// Waits until every running replica has applied everything the leader has committed. Followers
// learn the commit index from the leader's next AppendEntries or heartbeat (every 50 ms).
asio::awaitable<void> wait_until_converged(cluster& c, replica& leader) {
  for (;;) {
    bool all = true;
    for (auto& r : c)
      if (r->up && r->node->applied_index() < leader.node->commit_index()) all = false;
    if (all) co_return;
    co_await sleep_for(10ms);
  }
}

void print_replicas(const cluster& c) {
  for (const auto& r : c) {
    const auto& n = *r->node;
    // A stopped node keeps the state it had; its role is meaningless then.
    std::printf("  node %llu (%-8s term %llu): applied up to index %llu, state hash %016llx, {",
                static_cast<unsigned long long>(n.id().value),
                r->up ? raft::to_string(n.role()) : "stopped",
                static_cast<unsigned long long>(n.term().value),
                static_cast<unsigned long long>(n.applied_index().value),
                static_cast<unsigned long long>(r->state_machine.hash()));
    const char* sep = "";
    for (const auto& [key, value] : r->state_machine.data()) {
      std::printf("%s %s=\"%s\"", sep, key.c_str(), value.c_str());
      sep = ",";
    }
    std::printf(" }\n");
  }
}

// The client: everything the demo does, as one coroutine on the same io_context as the nodes.
asio::awaitable<int> client(cluster& c) {
  std::printf("\n== 1. electing a leader\n");
  replica* leader = co_await wait_for_leader(c);
  std::printf("  leader: node %llu in term %llu\n",
              static_cast<unsigned long long>(leader->node->id().value),
              static_cast<unsigned long long>(leader->node->term().value));

  std::printf("\n== 2. proposing commands (the client tries node 1 first, whoever leads)\n");
  // kv_state_machine::apply returns: put -> previous value, append -> new value, get -> value.
  bool ok = true;
  replica* via = c[0].get();  // the client's guess of the leader; run_command corrects it
  ok &= co_await run_command(c, via, "put greeting=hello", kv::put("greeting", "hello"));
  ok &= co_await run_command(c, via, "append greeting+=\", world\"", kv::append("greeting", ", world"));
  ok &= co_await run_command(c, via, "get greeting", kv::get("greeting"));
  ok &= co_await run_command(c, via, "put counter=1", kv::put("counter", "1"));
  ok &= co_await run_command(c, via, "put counter=2", kv::put("counter", "2"));
  ok &= co_await run_command(c, via, "append log+=a", kv::append("log", "a"));
  if (!ok) co_return 1;

  co_await wait_until_converged(c, *leader);
  std::printf("\n== 3. every replica applied the same commands in the same order\n");
  print_replicas(c);

  std::printf("\n== 4. failover: stopping leader node %llu\n",
              static_cast<unsigned long long>(leader->node->id().value));
  const auto stopped_at = std::chrono::steady_clock::now();
  leader->up = false;
  co_await leader->node->async_stop();  // completes once all of its coroutines have finished
  replica* next = co_await wait_for_leader(c);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - stopped_at);
  std::printf("  new leader: node %llu in term %llu, %lld ms after the old one stopped\n",
              static_cast<unsigned long long>(next->node->id().value),
              static_cast<unsigned long long>(next->node->term().value),
              static_cast<long long>(ms.count()));
  // Send through a survivor that is not the new leader, to show the redirect once more.
  via = next;
  for (auto& r : c)
    if (r->up && r.get() != next) via = r.get();
  ok &= co_await run_command(c, via, "append log+=b", kv::append("log", "b"));
  ok &= co_await run_command(c, via, "get greeting", kv::get("greeting"));
  if (!ok) co_return 1;

  co_await wait_until_converged(c, *next);
  std::printf("\n== 5. final state (the stopped node keeps what it had applied)\n");
  print_replicas(c);

  // The two survivors must hold identical state: same commands, same order.
  const replica* a = nullptr;
  for (auto& r : c) {
    if (!r->up) continue;
    if (a && (a->state_machine.hash() != r->state_machine.hash() ||
              a->state_machine.data() != r->state_machine.data())) {
      std::printf("  ERROR: replicas diverged\n");
      co_return 1;
    }
    a = r.get();
  }
  co_return 0;
}

}  // namespace

int main() {
  asio::io_context io;
  raft::local_network network;  // connects the local transports of this process

  raft::configuration founders;
  founders.voters = {raft::node_id{1}, raft::node_id{2}, raft::node_id{3}};
  cluster c;
  for (auto id : founders.voters) c.push_back(std::make_unique<replica>(io, network, id, founders));
  for (auto& r : c) r->node->start();  // reads storage, bootstraps, spawns the node's coroutines

  // Watchdog: the demo normally takes about a second. If it has not finished in 10 s something
  // is wrong; say so and exit non-zero rather than hang. (Exiting without stopping the nodes is
  // fine here: the process ends, nothing is destroyed.)
  asio::steady_timer watchdog(io, 10s);
  watchdog.async_wait([](std::error_code ec) {
    if (ec) return;  // cancelled: the demo finished in time
    std::fprintf(stderr, "demo: did not finish within 10 s, giving up\n");
    std::fflush(stdout);
    std::_Exit(1);
  });

  int exit_code = 1;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        exit_code = co_await client(c);
        // Stop every node (stopping one twice is fine). stop() completes every pending
        // proposal with errc::stopped, closes the transport and waits for the node's coroutines.
        for (auto& r : c) co_await r->node->async_stop();
        for (auto& r : c) r->up = false;
        std::printf("\nall nodes stopped\n");
        watchdog.cancel();
      },
      [&](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::fprintf(stderr, "demo: %s\n", ex.what());
        }
        std::_Exit(1);
      });

  io.run();  // returns once the client finished, the nodes stopped and the watchdog was cancelled
  return exit_code;
}
