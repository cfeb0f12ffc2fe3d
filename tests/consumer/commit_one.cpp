// tests/consumer/commit_one.cpp - the program every consumer project under tests/consumer/ builds.
//
// It uses raft the way an application does, with nothing but the installed (or vendored) headers:
// three nodes with the library's memory_storage and local_transport and a state machine of its
// own elect a leader, commit one command, and all three apply it. Exit code 0 means the headers,
// the Asio they were configured with and the compiler flags that travelled with them (C++20,
// threads, Clang's coroutine defines) make a working program.
//
// Elections run on ordinary steady timers, so the run takes some hundred milliseconds. Nothing
// waits for a fixed time: the client polls until a leader exists and until every node applied
// the command; a 30-second watchdog only turns a hang into a failure.
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <raft/raft.hpp>

namespace {

using namespace std::chrono_literals;

// The application's state machine: it records the commands it applies, in order.
struct command_log {
  std::vector<std::string> applied;

  std::size_t apply(raft::index_t, std::span<const std::byte> command) {
    applied.emplace_back(reinterpret_cast<const char*>(command.data()), command.size());
    return applied.size();  // what async_propose() completes with
  }
};

using node_type = raft::node<command_log, raft::memory_storage, raft::local_transport>;

// A node with the three objects it refers to, which must outlive it (so `node` is declared last).
struct member {
  member(asio::io_context& io, raft::local_network& network, raft::node_id id,
         const raft::configuration& founders)
      : transport(network, id, io.get_executor()) {
    raft::options o;
    o.id = id;
    o.bootstrap = founders;
    node = std::make_unique<node_type>(io.get_executor(), std::move(o), state_machine, storage,
                                       transport);
  }

  command_log state_machine;
  raft::memory_storage storage;
  raft::local_transport transport;
  std::unique_ptr<node_type> node;
};

using cluster = std::vector<std::unique_ptr<member>>;

asio::awaitable<void> pause() {
  asio::steady_timer t(co_await asio::this_coro::executor, 10ms);
  co_await t.async_wait(asio::use_awaitable);
}

// Proposes `command` to whichever node leads until one applies it, and returns how many
// commands that node had applied then. It retries while there is no leader, and when a leader
// lost its leadership before answering (on a loaded machine a heartbeat can come late): the
// command may then be applied twice, which this state machine tolerates.
asio::awaitable<raft::result<std::size_t>> propose_to_leader(cluster& c, const std::string& command) {
  const auto bytes = std::as_bytes(std::span(command));
  for (;;) {
    for (auto& m : c) {
      if (m->node->role() != raft::role::leader) continue;
      auto r = co_await m->node->async_propose(bytes);
      if (r || (r.error().code != raft::errc::not_leader &&
                r.error().code != raft::errc::leadership_lost))
        co_return r;
    }
    co_await pause();
  }
}

asio::awaitable<void> wait_until_all_applied(cluster& c, std::size_t count) {
  for (;;) {
    bool all = true;
    for (auto& m : c) all = all && m->state_machine.applied.size() >= count;
    if (all) co_return;
    co_await pause();
  }
}

// Whether the first `count` commands a node applied are all `command`.
bool applied_only(const member& m, std::size_t count, const std::string& command) {
  for (std::size_t i = 0; i < count; ++i)
    if (m.state_machine.applied[i] != command) return false;
  return true;
}

asio::awaitable<int> commit_one_command(cluster& c) {
  const std::string command = "hello from a consumer project";
  auto r = co_await propose_to_leader(c, command);
  if (!r) {
    std::fprintf(stderr, "commit_one: proposal failed: %s\n", r.error().message().c_str());
    co_return 1;
  }
  co_await wait_until_all_applied(c, *r);
  for (auto& m : c) {
    if (!applied_only(*m, *r, command)) {
      std::fprintf(stderr, "commit_one: node %llu applied something else\n",
                   static_cast<unsigned long long>(m->node->id().value));
      co_return 1;
    }
  }
  std::printf("commit_one: 3 nodes applied \"%s\"\n", command.c_str());
  co_return 0;
}

}  // namespace

int main() {
  asio::io_context io;
  raft::local_network network;
  raft::configuration founders;
  founders.voters = {raft::node_id{1}, raft::node_id{2}, raft::node_id{3}};
  cluster c;
  for (auto id : founders.voters) c.push_back(std::make_unique<member>(io, network, id, founders));
  for (auto& m : c) m->node->start();

  asio::steady_timer watchdog(io, 30s);
  watchdog.async_wait([](std::error_code ec) {
    if (ec) return;  // cancelled: finished in time
    std::fprintf(stderr, "commit_one: no commit within 30 s\n");
    std::_Exit(1);
  });

  int exit_code = 1;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        exit_code = co_await commit_one_command(c);
        for (auto& m : c) co_await m->node->async_stop();  // nodes must be stopped before destruction
        watchdog.cancel();
      },
      [](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::fprintf(stderr, "commit_one: %s\n", ex.what());
        }
        std::_Exit(1);
      });
  io.run();
  return exit_code;
}
