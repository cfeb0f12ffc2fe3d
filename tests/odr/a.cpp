// See odr.hpp. Identical to the other TU on purpose: the same entities, instantiated twice.
#include <cstdint>
#include <utility>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <raft/raft.hpp>
#include <raft/testing/kv_state_machine.hpp>

#include "odr.hpp"

namespace odr {

namespace {

// Instantiates the node and its coroutines: start a one-voter node, stop it, run to the end.
bool node_starts_and_stops() {
  asio::io_context ctx;
  raft::local_network net;
  raft::local_transport transport(net, raft::node_id{1}, ctx.get_executor());
  raft::memory_storage storage;
  raft::testing::kv_state_machine sm;
  raft::options o;
  o.id = raft::node_id{1};
  o.bootstrap = raft::configuration{{raft::node_id{1}}, {}, {}};
  raft::node<raft::testing::kv_state_machine, raft::memory_storage, raft::local_transport> n(
      ctx.get_executor(), o, sm, storage, transport);
  n.start();
  asio::co_spawn(ctx, n.async_stop(), asio::detached);
  ctx.run();
  return n.stopping() && n.status().id == raft::node_id{1} && storage.entries().size() == 1;
}

}  // namespace

facts from_a() {
  raft::in_memory_log log;
  for (std::uint64_t i = 1; i <= 2; ++i) {
    raft::log_entry e;
    e.term = raft::term_t{i};
    e.index = raft::index_t{i};
    log.append(std::move(e));
  }
  raft::configuration c;
  c.voters = {raft::node_id{1}, raft::node_id{2}, raft::node_id{3}};
  const auto committed =
      raft::quorum_index(c, [](raft::node_id id) { return raft::index_t{id.value}; });
  return facts{
      &raft::make_error_code(raft::errc::not_leader).category(),
      static_cast<int>(raft::majority(5)),
      log.last_index().value + committed.value,
      raft::to_string(raft::role::leader),
      node_starts_and_stops(),
  };
}

}  // namespace odr
