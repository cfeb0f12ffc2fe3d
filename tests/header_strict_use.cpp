// Part of the strict header check (tests/meson.build, suite headers): compiled with the warnings
// a user may build with (-Wpedantic -Wshadow -Wconversion -Wsign-conversion, as errors).
//
// A header compiled alone instantiates no template, and most of the library is templates: a
// warning in a function template's body shows only in the program that instantiates it. So this
// TU instantiates what a typical program does: a node over the real timer, file storage and TCP
// (compiled, not run: it would need a port and a folder), and one over the simulated cluster,
// with the sessions state machine, which the check runs briefly.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <utility>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/address_v4.hpp>
#include <asio/use_awaitable.hpp>

#include <raft/raft.hpp>
#include <raft/sessions.hpp>
#include <raft/storage/file.hpp>
#include <raft/testing/cluster.hpp>
#include <raft/testing/kv_state_machine.hpp>
#include <raft/transport/tcp.hpp>

namespace strict_use {

using kv = raft::testing::kv_state_machine;
using tcp_node = raft::node<kv, raft::file_storage, raft::tcp_transport>;

// Every public operation of a node over the production policies, spelled out as a user would.
asio::awaitable<void> drive(tcp_node& n) {
  auto put = co_await n.async_propose(kv::put("k", "v").bytes(), asio::use_awaitable);
  auto read = co_await n.async_read_barrier(asio::use_awaitable);
  auto added = co_await n.async_add_learner(raft::node_id{4}, asio::use_awaitable);
  auto promoted = co_await n.async_promote(raft::node_id{4}, asio::use_awaitable);
  auto removed = co_await n.async_remove(raft::node_id{4}, asio::use_awaitable);
  auto moved = co_await n.async_transfer_leadership(raft::node_id{2}, asio::use_awaitable);
  if (put && read && added && promoted && removed && moved) std::puts("all done");
  co_await n.async_stop();
}

void run_tcp_node(const std::filesystem::path& dir, unsigned short port) {
  asio::io_context ctx;
  const raft::node_id self{1};
  raft::tcp_transport transport(ctx.get_executor(), self,
                                asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), port),
                                std::map<raft::node_id, raft::tcp_address>{}, raft::tcp_transport_options{});
  raft::file_storage storage(dir);
  kv sm;
  raft::options o;
  o.id = self;
  o.bootstrap = raft::configuration{{self}, {}, {}};
  tcp_node n(ctx.get_executor(), o, sm, storage, transport);
  n.start();
  asio::co_spawn(ctx, drive(n), asio::detached);
  ctx.run();
}

// A three-node simulated cluster behind sessions elects a leader: true when it did.
bool sessions_cluster_elects() {
  raft::testing::cluster<raft::session_state_machine<kv>> c(3, 11);
  return c.ids().size() == 3 && c.wait_for_leader() != raft::node_id{};
}

}  // namespace strict_use

int main(int argc, char**) {
  // run_tcp_node is compiled, so its templates are instantiated, but never called (argc is 1).
  if (argc > 99) strict_use::run_tcp_node(std::filesystem::temp_directory_path(), 0);
  return strict_use::sessions_cluster_elects() ? 0 : 1;
}
