// raft::local_transport with real threads: three nodes, each on its own io_context thread,
// replicate commands. The verdict is what the replicas hold, never how long it took; the
// deadline only keeps a broken build from hanging CI.
#include <cstddef>  // before any Asio header (raft/detail/asio_check.hpp)

#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_future.hpp>
#include <cstdio>
#include <future>
#include <thread>

#include "raft/raft.hpp"
#include "raft/testing/kv_state_machine.hpp"

using namespace raft;
using namespace std::chrono_literals;
using kv = raft::testing::kv_state_machine;
using kv_node = node<kv, memory_storage, local_transport>;

namespace {

struct threaded_member {
  explicit threaded_member(local_network& net, node_id id, const configuration& founders)
      : transport(net, id, strand) {
    options o;
    o.id = id;
    o.bootstrap = founders;
    o.election_timeout_min = 100ms;
    o.election_timeout_max = 200ms;
    o.heartbeat_interval = 20ms;
    n = std::make_unique<kv_node>(strand, o, sm, storage, transport);
  }
  asio::io_context context{1};
  asio::strand<asio::io_context::executor_type> strand{context.get_executor()};
  kv sm;
  memory_storage storage;
  local_transport transport;
  std::unique_ptr<kv_node> n;
};

// Runs `f` on the member's strand and waits for its result.
template <class F>
auto on(threaded_member& m, F f) {
  return asio::dispatch(m.strand, asio::use_future(std::move(f))).get();
}

}  // namespace

TEST_CASE("nodes on separate threads elect a leader and agree on every command") {
  const configuration founders{{node_id{1}, node_id{2}, node_id{3}}, {}, {}};
  local_network net;
  std::vector<std::unique_ptr<threaded_member>> members;
  for (std::uint64_t i = 1; i <= 3; ++i)
    members.push_back(std::make_unique<threaded_member>(net, node_id{i}, founders));
  std::vector<std::thread> threads;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& m : members) {
    guards.push_back(asio::make_work_guard(m->context));
    threads.emplace_back([&ctx = m->context] { ctx.run(); });
    on(*m, [&] { m->n->start(); });
  }

  // Propose through whoever leads, following not_leader hints, until 300 commands are applied.
  constexpr int commands = 300;
  int done = 0;
  std::size_t target = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (done < commands && std::chrono::steady_clock::now() < deadline) {
    auto& m = *members[target];
    auto r = asio::co_spawn(m.strand, m.n->async_propose(kv::put("k" + std::to_string(done), "v").bytes()),
                            asio::use_future)
                 .get();
    if (r) {
      ++done;
    } else if (r.error().code == errc::not_leader && r.error().leader_hint != no_node) {
      target = r.error().leader_hint.value - 1;
    } else {
      target = (target + 1) % members.size();
      std::this_thread::sleep_for(10ms);
    }
  }
  REQUIRE(done == commands);

  // Every replica converges to the same applied history.
  auto converged = [&] {
    const auto h = on(*members[0], [&] { return std::make_pair(members[0]->sm.hash(), members[0]->sm.applied_count()); });
    for (auto& m : members)
      if (on(*m, [&] { return std::make_pair(m->sm.hash(), m->sm.applied_count()); }) != h) return false;
    return h.second >= std::uint64_t(commands);
  };
  while (!converged() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  CHECK(converged());
  for (auto& m : members) CHECK(on(*m, [&] { return m->sm.data().size(); }) == std::size_t(commands));

  for (auto& m : members) {
    auto stopped = asio::co_spawn(m->strand, m->n->async_stop(), asio::use_future);
    if (stopped.wait_until(deadline + 30s) != std::future_status::ready) {
      // A node that does not stop would hang the suite; report it and end the process.
      FAIL_CHECK("node " << m->n->id() << " did not stop");
      std::fflush(stdout);
      std::_Exit(1);
    }
  }
  guards.clear();
  for (auto& t : threads) t.join();
}
