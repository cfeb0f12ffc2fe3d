// tests/transport/tcp_fixture.hpp - what the TCP and TLS transport tests share: running an
// io_context until a condition holds, capturing logs, a 3-node cluster over any
// basic_tcp_transport, and raw clients that speak bytes at a port.
#pragma once

#include <doctest/doctest.h>

#include <cstddef>  // a standard header before the first Asio header (raft/detail/asio_check.hpp)

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "raft/raft.hpp"
#include "raft/testing/kv_state_machine.hpp"
#include "raft/transport/tcp.hpp"

namespace tcp_test {

using namespace raft;
using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using kv = raft::testing::kv_state_machine;

inline const asio::ip::address loopback = asio::ip::make_address("127.0.0.1");

/// Runs `ctx` until `done()` holds or `timeout` passes; returns done().
inline bool run_until(asio::io_context& ctx, const std::function<bool()>& done,
                      std::chrono::steady_clock::duration timeout = 60s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ctx.restart();
  while (!done() && std::chrono::steady_clock::now() < deadline) ctx.run_one_for(20ms);
  return done();
}

/// After everything was closed, the io_context must run out of work: every coroutine finished.
inline bool drains(asio::io_context& ctx) {
  ctx.restart();
  ctx.run_for(10s);
  return ctx.stopped();
}

/// A port nobody listens on right now (bound to 0, read, released).
inline std::uint16_t free_port(asio::io_context& ctx) {
  tcp::acceptor a(ctx, tcp::endpoint(loopback, 0));
  return a.local_endpoint().port();
}

struct log_capture {
  std::shared_ptr<std::vector<std::string>> lines = std::make_shared<std::vector<std::string>>();
  raft::logger logger() const {
    raft::logger l;
    l.min_level = log_level::debug;
    l.sink = [lines = lines](log_level lv, std::string_view text) {
      lines->emplace_back(text);
      if (std::getenv("RAFT_TEST_VERBOSE")) std::fprintf(stderr, "[%s] %.*s\n", to_string(lv), int(text.size()), text.data());
    };
    return l;
  }
  bool contains(std::string_view needle) const {
    for (auto& l : *lines)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }
  /// Whether one line holds every needle.
  bool contains_all(std::initializer_list<std::string_view> needles) const {
    for (auto& l : *lines) {
      bool all = true;
      for (auto n : needles) all = all && l.find(n) != std::string::npos;
      if (all) return true;
    }
    return false;
  }
};

inline tcp_transport_options fast_options(const log_capture& logs, std::uint64_t cluster = 77) {
  tcp_transport_options o;
  o.cluster_id = cluster;
  o.reconnect_backoff_min = 10ms;
  o.reconnect_backoff_max = 200ms;
  o.connect_timeout = 1000ms;
  o.logger = logs.logger();
  return o;
}

inline message vote(node_id from, node_id to, std::uint64_t term) {
  return message{from, to, vote_request{term_t{term}, index_t{0}, term_t{0}, false}};
}

/// Receives into `out` until the transport closes; sets `*finished` then.
template <class Transport>
asio::awaitable<void> collect(Transport& t, std::shared_ptr<std::vector<message>> out,
                              std::shared_ptr<bool> finished) {
  std::vector<message> batch;
  for (;;) {
    batch.clear();
    if (!co_await t.receive(batch)) break;
    for (auto& m : batch) out->push_back(std::move(m));
  }
  *finished = true;
}

/// A transport and what it received, for tests of transports on their own.
template <class Transport>
struct endpoint_under_test {
  std::unique_ptr<Transport> t;
  std::shared_ptr<std::vector<message>> received = std::make_shared<std::vector<message>>();
  std::shared_ptr<bool> finished = std::make_shared<bool>(false);
  void listen(asio::io_context& ctx) { asio::co_spawn(ctx, collect(*t, received, finished), asio::detached); }
};

// ---- a 3-node cluster -----------------------------------------------------------------------

template <class Transport>
struct cluster {
  using node_type = node<kv, memory_storage, Transport>;
  /// Makes node `id`'s transport (throws std::system_error if it cannot bind `listen`).
  using factory = std::function<std::unique_ptr<Transport>(asio::io_context&, node_id id, tcp::endpoint listen,
                                                          std::map<node_id, tcp_address> peers,
                                                          tcp_transport_options)>;

  struct member {
    node_id id;
    memory_storage storage;  // survives restarts, like a disk
    std::uint16_t port = 0;
    std::unique_ptr<kv> sm;
    std::unique_ptr<Transport> transport;
    std::unique_ptr<node_type> n;
  };

  cluster(asio::io_context& c, factory f) : ctx(c), make(std::move(f)) {
    for (std::uint64_t i = 1; i <= 3; ++i) {
      members.push_back(std::make_unique<member>());
      members.back()->id = node_id{i};
    }
  }

  asio::io_context& ctx;
  factory make;
  log_capture logs;
  configuration founders{{node_id{1}, node_id{2}, node_id{3}}, {}, {}};
  std::vector<std::unique_ptr<member>> members;

  member& at(node_id id) { return *members[id.value - 1]; }

  std::map<node_id, tcp_address> book(node_id self) {
    std::map<node_id, tcp_address> out;
    for (auto& m : members)
      if (m->id != self && m->port != 0) out[m->id] = {"127.0.0.1", m->port};
    return out;
  }

  void start(member& m) {
    m.sm = std::make_unique<kv>();
    // Restart on the same port if it can be bound again; else on a new one, told to the peers.
    try {
      m.transport = make(ctx, m.id, tcp::endpoint(loopback, m.port), book(m.id), fast_options(logs));
    } catch (const std::system_error&) {
      m.transport = make(ctx, m.id, tcp::endpoint(loopback, 0), book(m.id), fast_options(logs));
    }
    const auto port = m.transport->local_endpoint().port();
    if (port != m.port) {
      m.port = port;
      for (auto& other : members)
        if (other->transport && other.get() != &m) other->transport->add_peer(m.id, {"127.0.0.1", port});
    }
    options o;
    o.id = m.id;
    o.bootstrap = founders;
    o.election_timeout_min = 300ms;
    o.election_timeout_max = 600ms;
    o.heartbeat_interval = 50ms;
    o.logger = logs.logger();
    o.logger.min_level = log_level::warning;
    m.n = std::make_unique<node_type>(ctx.get_executor(), o, *m.sm, m.storage, *m.transport);
    m.n->start();
  }

  void start_all() {
    // Highest id first: each node then knows the ports of the higher ids it dials.
    for (auto it = members.rbegin(); it != members.rend(); ++it) start(**it);
  }

  asio::awaitable<void> stop(member& m) {
    if (!m.n) co_return;
    co_await m.n->async_stop();
    m.n.reset();
    m.transport.reset();  // closed by stop(); its coroutines keep their state until they finish
    m.sm.reset();
  }

  asio::awaitable<void> stop_all() {
    for (auto& m : members) co_await stop(*m);
  }

  asio::awaitable<void> sleep(std::chrono::milliseconds d) {
    asio::steady_timer t(ctx, d);
    co_await t.async_wait(asio::use_awaitable);
  }

  /// Proposes `cmd` until some leader applies it, following not-leader hints.
  asio::awaitable<bool> propose(buffer cmd, std::chrono::steady_clock::time_point deadline) {
    std::size_t target = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      auto& m = *members[target];
      if (!m.n) {
        target = (target + 1) % members.size();
        continue;
      }
      auto r = co_await m.n->async_propose(cmd.bytes());
      if (r) co_return true;
      if (r.error().code == errc::not_leader && r.error().leader_hint != no_node &&
          at(r.error().leader_hint).n) {
        target = r.error().leader_hint.value - 1;
      } else {
        target = (target + 1) % members.size();
        co_await sleep(20ms);
      }
    }
    co_return false;
  }

  /// Proposes puts k<first>..k<last-1> from `parallel` concurrent clients.
  asio::awaitable<bool> put_range(int first, int last, int parallel, std::chrono::seconds timeout = 60s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int next = first, failed = 0, running = parallel;
    asio::steady_timer all_done(ctx, asio::steady_timer::time_point::max());
    for (int c = 0; c < parallel; ++c) {
      asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
        while (next < last && failed == 0) {
          const int k = next++;
          if (!co_await propose(kv::put("k" + std::to_string(k), "v" + std::to_string(k)), deadline)) ++failed;
        }
        if (--running == 0) all_done.cancel();
      }, asio::detached);
    }
    std::error_code ec;
    if (running > 0) co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return failed == 0;
  }

  /// Waits until every running replica applied the same history holding `keys` keys.
  asio::awaitable<bool> converged(std::size_t keys, std::chrono::seconds timeout = 60s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      bool same = true;
      const member* first = nullptr;
      for (auto& m : members) {
        if (!m->n) continue;
        if (!first) first = m.get();
        same = same && m->sm->data().size() == keys && m->sm->hash() == first->sm->hash() &&
               m->sm->applied_count() == first->sm->applied_count();
      }
      if (same) co_return true;
      if (std::chrono::steady_clock::now() > deadline) co_return false;
      co_await sleep(20ms);
    }
  }

  node_id leader() const {
    for (auto& m : members)
      if (m->n && m->n->role() == role::leader) return m->id;
    return no_node;
  }
};

/// Runs `body` on a cluster whose transports `make` builds, then stops every node (also when
/// `body` failed), then checks that the io_context runs out of work. Ends the process if the
/// scenario hangs past its deadline.
template <class Transport>
void run_scenario(typename cluster<Transport>::factory make,
                  std::function<asio::awaitable<void>(cluster<Transport>&)> body) {
  asio::io_context ctx;
  cluster<Transport> c(ctx, std::move(make));
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    c.start_all();
    std::exception_ptr e;
    try {
      co_await body(c);
    } catch (...) {
      e = std::current_exception();
    }
    co_await c.stop_all();
    if (e) std::rethrow_exception(e);
  }, [&](std::exception_ptr e) {
    done = true;
    failure = e;
  });
  if (!run_until(ctx, [&] { return done; }, 180s)) {
    FAIL_CHECK("scenario did not finish within its deadline");
    std::fflush(stdout);
    std::_Exit(1);
  }
  if (failure) std::rethrow_exception(failure);
  CHECK(drains(ctx));
}

// ---- raw clients ------------------------------------------------------------------------------

/// Connects a raw socket to `port`, writes `bytes`, and reads until the server closes it.
/// Returns what the server sent before closing, or nothing if it did not close in time.
inline asio::awaitable<std::optional<std::vector<std::byte>>> speak(asio::io_context& ctx, std::uint16_t port,
                                                                    std::vector<std::byte> bytes) {
  tcp::socket s(ctx);
  std::error_code ec;
  co_await s.async_connect(tcp::endpoint(loopback, port), asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return std::nullopt;
  co_await asio::async_write(s, asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, ec));
  // A generous deadline: a server that keeps the connection open fails the check.
  bool timed_out = false;
  asio::steady_timer deadline(ctx, 20s);
  deadline.async_wait([&](std::error_code e) {
    if (!e) {
      timed_out = true;
      s.close();
    }
  });
  std::vector<std::byte> received;
  std::array<std::byte, 256> chunk{};
  for (;;) {
    const auto n = co_await s.async_read_some(asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
    received.insert(received.end(), chunk.begin(), chunk.begin() + std::ptrdiff_t(n));
    if (ec) break;
  }
  deadline.cancel();
  if (timed_out) co_return std::nullopt;
  co_return received;
}

inline std::vector<std::byte> le32(std::uint32_t v) {
  std::vector<std::byte> out;
  for (int i = 0; i < 4; ++i) out.push_back(std::byte(static_cast<std::uint8_t>(v >> (8 * i))));
  return out;
}

inline std::vector<std::byte> hello_bytes(std::uint64_t cluster, std::uint64_t id) {
  std::array<std::byte, codec::hello_bytes> h{};
  codec::encode_hello({cluster, node_id{id}}, h);
  return {h.begin(), h.end()};
}

inline std::vector<std::byte> concat(std::vector<std::byte> a, const std::vector<std::byte>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace tcp_test
