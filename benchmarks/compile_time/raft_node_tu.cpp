// benchmarks/compile_time/raft_node_tu.cpp - what a user's translation unit costs to compile:
// include raft/raft.hpp, instantiate one node (a small state machine, memory_storage,
// local_transport), start it, propose through it with co_await, and stop it.
// Compiled, never run, by benchmarks/compile_time.sh (side by side with echo_server.cpp).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <raft/raft.hpp>

namespace {

struct counter {
  std::int64_t value = 0;
  std::int64_t apply(raft::index_t, std::span<const std::byte> command) {
    value += static_cast<std::int64_t>(command.size());
    return value;
  }
};

using node_type = raft::node<counter, raft::memory_storage, raft::local_transport>;

asio::awaitable<void> client(node_type& n) {
  const std::byte command[8] = {};
  auto r = co_await n.async_propose(command);
  if (r)
    std::printf("applied: %lld\n", static_cast<long long>(*r));
  else
    std::printf("failed: %s\n", r.error().message().c_str());
  co_await n.async_stop();
}

}  // namespace

int main() {
  asio::io_context io;
  raft::local_network network;
  counter sm;
  raft::memory_storage storage;
  raft::local_transport transport(network, raft::node_id{1}, io.get_executor());
  raft::options o;
  o.id = raft::node_id{1};
  raft::configuration founders;
  founders.voters.push_back(raft::node_id{1});
  o.bootstrap = founders;
  node_type n(io.get_executor(), o, sm, storage, transport);
  n.start();
  asio::co_spawn(io, client(n), asio::detached);
  io.run();
}
