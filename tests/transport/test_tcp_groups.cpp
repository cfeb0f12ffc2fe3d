// Many Raft groups over one tcp_transport per process (raft/multi/group_router.hpp): 3 processes
// over loopback, each a replica of 40 groups. Every group elects and commits its own values, the
// processes hold one connection per pair whatever the number of groups, and the messages of many
// groups go out in fewer writes than messages. Verdicts are on outcomes, never on time (the limits
// only bound a hung run).
#include "tcp_fixture.hpp"

#include "raft/multi/group_router.hpp"

namespace {

using namespace tcp_test;
using group_node = raft::node<kv, raft::memory_storage, raft::group_transport<tcp_transport>>;

/// One process: its transport, its router and a replica of each group.
struct groups_process {
  struct replica {
    kv sm;
    raft::memory_storage storage;
    std::unique_ptr<raft::group_transport<tcp_transport>> transport;
    std::unique_ptr<group_node> node;
  };
  std::unique_ptr<tcp_transport> net;
  std::unique_ptr<raft::group_router<tcp_transport>> router;
  std::map<raft::group_id, replica> replicas;
};

}  // namespace

TEST_CASE("tcp groups: 40 groups on 3 processes share one connection per pair and commit their own values") {
  constexpr std::uint64_t group_count = 40;
  asio::io_context ctx;
  log_capture logs;
  std::map<node_id, std::uint16_t> ports;
  for (std::uint64_t p = 1; p <= 3; ++p) ports[node_id{p}] = free_port(ctx);
  configuration conf;
  for (auto& [id, port] : ports) conf.voters.push_back(id);

  std::map<node_id, groups_process> procs;
  for (auto& [id, port] : ports) {
    std::map<node_id, tcp_address> book;
    for (auto& [other, other_port] : ports)
      if (other != id) book[other] = {"127.0.0.1", other_port};
    auto& proc = procs[id];
    proc.net = std::make_unique<tcp_transport>(ctx.get_executor(), id, tcp::endpoint(loopback, port), book,
                                               fast_options(logs));
    proc.router = std::make_unique<raft::group_router<tcp_transport>>(*proc.net, ctx.get_executor());
    asio::co_spawn(ctx, proc.router->run(), asio::detached);
    for (std::uint64_t g = 1; g <= group_count; ++g) {
      auto& r = proc.replicas[group_id{g}];
      r.transport = std::make_unique<raft::group_transport<tcp_transport>>(*proc.router, group_id{g});
      raft::options o;
      o.id = id;
      o.bootstrap = conf;
      o.election_timeout_min = 300ms;
      o.election_timeout_max = 600ms;
      o.heartbeat_interval = 50ms;
      o.seed = id.value * 1000 + g;
      r.node = std::make_unique<group_node>(ctx.get_executor(), o, r.sm, r.storage, *r.transport);
      r.node->start();
    }
  }

  auto leader_of = [&](group_id g) -> group_node* {
    for (auto& [id, proc] : procs)
      if (proc.replicas[g].node->role() == role::leader) return proc.replicas[g].node.get();
    return nullptr;
  };
  REQUIRE(run_until(ctx, [&] {
    for (std::uint64_t g = 1; g <= group_count; ++g)
      if (!leader_of(group_id{g})) return false;
    return true;
  }));

  std::size_t committed = 0;
  for (std::uint64_t g = 1; g <= group_count; ++g)
    leader_of(group_id{g})->async_propose(kv::put("k", "v" + std::to_string(g)).bytes(),
                                          [&committed](raft::result<std::string> r) { committed += r.has_value(); });
  REQUIRE(run_until(ctx, [&] { return committed == group_count; }));
  // Every replica of every group applies its own group's value, and only it.
  REQUIRE(run_until(ctx, [&] {
    for (auto& [id, proc] : procs)
      for (auto& [g, r] : proc.replicas)
        if (r.sm.find("k") != "v" + std::to_string(g.value)) return false;
    return true;
  }));

  for (auto& [id, proc] : procs) {
    const std::uint64_t process_id = id.value;  // (clang 14: no structured binding in INFO's lambda)
    INFO("process " << process_id);
    // One connection per pair of processes (each counts its two), whatever the number of groups.
    CHECK(proc.net->stats().connections_established == 2);
    CHECK(proc.router->stats().unknown_group == 0);
    CHECK(proc.router->stats().routed >= group_count);
    // Many groups' messages share a flush of the shared transport.
    CHECK(proc.router->stats().flushes < proc.net->stats().messages_sent);
  }

  for (auto& [id, proc] : procs)
    for (auto& [g, r] : proc.replicas) {
      bool stopped = false;
      asio::co_spawn(ctx, r.node->async_stop(), [&](std::exception_ptr) { stopped = true; });
      REQUIRE(run_until(ctx, [&] { return stopped; }, 10s));
    }
  for (auto& [id, proc] : procs) {
    for (auto& [g, r] : proc.replicas) r.node.reset(), r.transport.reset();
    proc.router->close();
  }
  ctx.restart();
  ctx.run_for(100ms);
  for (auto& [id, proc] : procs) proc.router.reset(), proc.net.reset();
  CHECK(drains(ctx));
}
