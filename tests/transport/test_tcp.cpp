// raft::tcp_transport over loopback: transports on their own, a 3-node cluster, restarts, and
// clients that speak garbage. Verdicts are about what arrives and what the replicas hold; time
// appears only as generous deadlines that fail a test instead of hanging it.
#include <doctest/doctest.h>

#include <cstddef>  // a standard header before the first Asio header (raft/detail/asio_check.hpp)

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "raft/raft.hpp"
#include "raft/testing/kv_state_machine.hpp"
#include "raft/transport/tcp.hpp"

using namespace raft;
using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using kv = raft::testing::kv_state_machine;
using tcp_node = node<kv, memory_storage, tcp_transport>;

static_assert(raft::transport<tcp_transport>);

namespace {

const auto loopback = asio::ip::make_address("127.0.0.1");

/// Runs `ctx` until `done()` holds or `timeout` passes; returns done().
bool run_until(asio::io_context& ctx, const std::function<bool()>& done,
               std::chrono::steady_clock::duration timeout = 60s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  ctx.restart();
  while (!done() && std::chrono::steady_clock::now() < deadline) ctx.run_one_for(20ms);
  return done();
}

/// After everything was closed, the io_context must run out of work: every coroutine finished.
bool drains(asio::io_context& ctx) {
  ctx.restart();
  ctx.run_for(10s);
  return ctx.stopped();
}

/// A port nobody listens on right now (bound to 0, read, released).
std::uint16_t free_port(asio::io_context& ctx) {
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
};

tcp_transport_options fast_options(const log_capture& logs, std::uint64_t cluster = 77) {
  tcp_transport_options o;
  o.cluster_id = cluster;
  o.reconnect_backoff_min = 10ms;
  o.reconnect_backoff_max = 200ms;
  o.connect_timeout = 1000ms;
  o.logger = logs.logger();
  return o;
}

message vote(node_id from, node_id to, std::uint64_t term) {
  return message{from, to, vote_request{term_t{term}, index_t{0}, term_t{0}, false}};
}

/// Receives into `out` until the transport closes; sets `*finished` then.
asio::awaitable<void> collect(tcp_transport& t, std::shared_ptr<std::vector<message>> out,
                              std::shared_ptr<bool> finished) {
  std::vector<message> batch;
  for (;;) {
    batch.clear();
    if (!co_await t.receive(batch)) break;
    for (auto& m : batch) out->push_back(std::move(m));
  }
  *finished = true;
}

}  // namespace

TEST_CASE("tcp: two transports exchange messages both ways over one connection") {
  asio::io_context ctx;
  log_capture logs;
  auto b = std::make_unique<tcp_transport>(ctx.get_executor(), node_id{2}, tcp::endpoint(loopback, 0),
                                           std::map<node_id, tcp_address>{}, fast_options(logs));
  const auto port_b = b->local_endpoint().port();
  auto a = std::make_unique<tcp_transport>(ctx.get_executor(), node_id{1}, tcp::endpoint(loopback, 0),
                                           std::map<node_id, tcp_address>{{node_id{2}, {"127.0.0.1", port_b}}},
                                           fast_options(logs));
  auto at_a = std::make_shared<std::vector<message>>();
  auto at_b = std::make_shared<std::vector<message>>();
  auto a_done = std::make_shared<bool>(false), b_done = std::make_shared<bool>(false);
  asio::co_spawn(ctx, collect(*a, at_a, a_done), asio::detached);
  asio::co_spawn(ctx, collect(*b, at_b, b_done), asio::detached);

  // b -> a first: b only accepts (the lower id dials), so this waits in b's queue until a dials.
  for (std::uint64_t t = 1; t <= 500; ++t) b->send(vote(node_id{2}, node_id{1}, t));
  for (std::uint64_t t = 1; t <= 500; ++t) a->send(vote(node_id{1}, node_id{2}, t));
  // A big append request, too.
  append_request big{term_t{3}, index_t{0}, term_t{0}, index_t{0}, {}};
  for (std::uint64_t i = 1; i <= 100; ++i)
    big.entries.push_back(log_entry{term_t{3}, index_t{i}, entry_kind::command, buffer{std::vector<std::byte>(10000, std::byte{7})}});
  a->send(message{node_id{1}, node_id{2}, big});

  REQUIRE(run_until(ctx, [&] { return at_a->size() == 500 && at_b->size() == 501; }));
  // In order, nothing lost (nothing overflowed).
  for (std::uint64_t t = 1; t <= 500; ++t) {
    CHECK(at_a->at(t - 1) == vote(node_id{2}, node_id{1}, t));
    CHECK(at_b->at(t - 1) == vote(node_id{1}, node_id{2}, t));
  }
  CHECK(at_b->back() == message{node_id{1}, node_id{2}, big});
  CHECK(a->connected(node_id{2}));
  CHECK(b->connected(node_id{1}));
  CHECK(a->stats().connections_established == 1);
  CHECK(b->stats().connections_established == 1);

  // close() ends a pending receive with false, and every coroutine finishes.
  a->close();
  b->close();
  REQUIRE(run_until(ctx, [&] { return *a_done && *b_done; }, 10s));
  a.reset();
  b.reset();
  CHECK(drains(ctx));
}

TEST_CASE("tcp: a full queue drops the oldest messages; the newest arrive once the peer is up") {
  asio::io_context ctx;
  log_capture logs;
  const auto port_b = free_port(ctx);
  auto o = fast_options(logs);
  o.max_queue_messages = 10;
  auto a = std::make_unique<tcp_transport>(ctx.get_executor(), node_id{1}, tcp::endpoint(loopback, 0),
                                           std::map<node_id, tcp_address>{{node_id{2}, {"127.0.0.1", port_b}}}, o);
  for (std::uint64_t t = 1; t <= 100; ++t) a->send(vote(node_id{1}, node_id{2}, t));
  CHECK(a->stats().dropped_queue_full == 90);

  // Too large for the frame limit: dropped at send().
  o.max_frame_bytes = 1000;
  auto small = std::make_unique<tcp_transport>(ctx.get_executor(), node_id{5}, tcp::endpoint(loopback, 0),
                                               std::map<node_id, tcp_address>{}, o);
  small->send(message{node_id{5}, node_id{6},
                      append_request{term_t{1}, index_t{0}, term_t{0}, index_t{0},
                                     {log_entry{term_t{1}, index_t{1}, entry_kind::command, buffer{std::vector<std::byte>(2000)}}}}});
  CHECK(small->stats().dropped_too_large == 1);

  // Let a fail to dial a few times (nobody listens yet), then start b on that port.
  run_until(ctx, [] { return false; }, 100ms);
  CHECK_FALSE(a->connected(node_id{2}));
  auto b = std::make_unique<tcp_transport>(ctx.get_executor(), node_id{2}, tcp::endpoint(loopback, port_b),
                                           std::map<node_id, tcp_address>{}, fast_options(logs));
  auto at_b = std::make_shared<std::vector<message>>();
  auto b_done = std::make_shared<bool>(false);
  asio::co_spawn(ctx, collect(*b, at_b, b_done), asio::detached);
  REQUIRE(run_until(ctx, [&] { return at_b->size() == 10; }));
  for (std::uint64_t i = 0; i < 10; ++i) CHECK(at_b->at(i) == vote(node_id{1}, node_id{2}, 91 + i));

  a->close();
  b->close();
  small->close();
  REQUIRE(run_until(ctx, [&] { return *b_done; }, 10s));
  a.reset();
  b.reset();
  small.reset();
  CHECK(drains(ctx));
}

TEST_CASE("tcp: transports of different clusters never connect") {
  asio::io_context ctx;
  log_capture logs;
  auto b = std::make_unique<tcp_transport>(ctx.get_executor(), node_id{2}, tcp::endpoint(loopback, 0),
                                           std::map<node_id, tcp_address>{}, fast_options(logs, 1));
  auto a = std::make_unique<tcp_transport>(
      ctx.get_executor(), node_id{1}, tcp::endpoint(loopback, 0),
      std::map<node_id, tcp_address>{{node_id{2}, {"127.0.0.1", b->local_endpoint().port()}}}, fast_options(logs, 2));
  auto at_b = std::make_shared<std::vector<message>>();
  auto b_done = std::make_shared<bool>(false);
  asio::co_spawn(ctx, collect(*b, at_b, b_done), asio::detached);
  a->send(vote(node_id{1}, node_id{2}, 1));
  REQUIRE(run_until(ctx, [&] { return b->stats().handshake_failures >= 3; }));
  CHECK(at_b->empty());
  CHECK_FALSE(a->connected(node_id{2}));
  CHECK(logs.contains("cluster id mismatch: 2 (ours 1)"));
  a->close();
  b->close();
  REQUIRE(run_until(ctx, [&] { return *b_done; }, 10s));
  a.reset();
  b.reset();
  CHECK(drains(ctx));
}

// ---- a 3-node cluster -----------------------------------------------------------------------

namespace {

struct member {
  node_id id;
  memory_storage storage;  // survives restarts, like a disk
  std::uint16_t port = 0;
  std::unique_ptr<kv> sm;
  std::unique_ptr<tcp_transport> transport;
  std::unique_ptr<tcp_node> n;
};

struct tcp_cluster {
  explicit tcp_cluster(asio::io_context& c) : ctx(c) {
    for (std::uint64_t i = 1; i <= 3; ++i) {
      members.push_back(std::make_unique<member>());
      members.back()->id = node_id{i};
    }
  }

  asio::io_context& ctx;
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
      m.transport = std::make_unique<tcp_transport>(ctx.get_executor(), m.id, tcp::endpoint(loopback, m.port),
                                                    book(m.id), fast_options(logs));
    } catch (const std::system_error&) {
      m.transport = std::make_unique<tcp_transport>(ctx.get_executor(), m.id, tcp::endpoint(loopback, 0),
                                                    book(m.id), fast_options(logs));
    }
    const auto port = m.transport->local_endpoint().port();
    if (port != m.port) {
      m.port = port;
      for (auto& other : members)
        if (other->transport && other.get() != &m) other->transport->set_peer_address(m.id, {"127.0.0.1", port});
    }
    options o;
    o.id = m.id;
    o.bootstrap = founders;
    o.election_timeout_min = 300ms;
    o.election_timeout_max = 600ms;
    o.heartbeat_interval = 50ms;
    o.logger = logs.logger();
    o.logger.min_level = log_level::warning;
    m.n = std::make_unique<tcp_node>(ctx.get_executor(), o, *m.sm, m.storage, *m.transport);
    m.n->start();
  }

  void start_all() {
    // Highest id first: each node then knows the ports of the higher ids it dials.
    for (auto it = members.rbegin(); it != members.rend(); ++it) start(**it);
  }

  asio::awaitable<void> stop(member& m) {
    if (!m.n) co_return;
    co_await m.n->stop();
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
      auto r = co_await m.n->propose(cmd.bytes());
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

/// Runs `body` on the cluster, then stops every node (also when `body` failed), then checks that
/// the io_context runs out of work. Ends the process if the scenario hangs past its deadline.
void run_scenario(std::function<asio::awaitable<void>(tcp_cluster&)> body) {
  asio::io_context ctx;
  tcp_cluster c(ctx);
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

}  // namespace

TEST_CASE("tcp: a 3-node cluster elects a leader and replicates 200 commands to every replica") {
  run_scenario([](tcp_cluster& c) -> asio::awaitable<void> {
    REQUIRE(co_await c.put_range(0, 200, 8));
    CHECK(co_await c.converged(200));
    CHECK(c.leader() != no_node);
    for (auto& m : c.members) {
      CHECK(m->transport->stats().protocol_errors == 0);
      CHECK(m->transport->stats().handshake_failures == 0);
      CHECK(m->transport->stats().dropped_forged == 0);
    }
  });
}

TEST_CASE("tcp: a restarted peer (same storage, new transport) catches up, on either side of the dial") {
  run_scenario([](tcp_cluster& c) -> asio::awaitable<void> {
    REQUIRE(co_await c.put_range(0, 50, 4));
    int keys = 50;
    // Restart the followers one after the other: the higher id first (it is dialled), then the
    // lower one (it dials).
    std::vector<node_id> followers;
    for (auto& m : c.members)
      if (m->id != c.leader()) followers.push_back(m->id);
    REQUIRE(followers.size() == 2);
    for (node_id f : {followers[1], followers[0]}) {
      CAPTURE(f);
      auto& m = c.at(f);
      co_await c.stop(m);
      REQUIRE(co_await c.put_range(keys, keys + 50, 4));  // the other two still form a majority
      keys += 50;
      c.start(m);
      CHECK(co_await c.converged(std::size_t(keys)));
    }
    REQUIRE(co_await c.put_range(keys, keys + 20, 2));
    keys += 20;
    CHECK(co_await c.converged(std::size_t(keys)));
  });
}

namespace {

/// Connects a raw socket to `port`, writes `bytes`, and reads until the server closes it.
/// Returns what the server sent before closing, or nothing if it did not close in time.
asio::awaitable<std::optional<std::vector<std::byte>>> speak(asio::io_context& ctx, std::uint16_t port,
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

std::vector<std::byte> le32(std::uint32_t v) {
  std::vector<std::byte> out;
  for (int i = 0; i < 4; ++i) out.push_back(std::byte(static_cast<std::uint8_t>(v >> (8 * i))));
  return out;
}

std::vector<std::byte> hello_bytes(std::uint64_t cluster, std::uint64_t id) {
  std::array<std::byte, codec::hello_bytes> h{};
  codec::encode_hello({cluster, node_id{id}}, h);
  return {h.begin(), h.end()};
}

}  // namespace

TEST_CASE("tcp: clients that speak garbage are dropped and the cluster keeps working") {
  run_scenario([](tcp_cluster& c) -> asio::awaitable<void> {
    REQUIRE(co_await c.put_range(0, 30, 4));
    auto& target = c.at(node_id{3});  // accepts from 1 and 2
    const auto port = target.port;
    std::mt19937_64 rng(12345);
    auto random_bytes = [&](std::size_t n) {
      std::vector<std::byte> v(n);
      for (auto& b : v) b = std::byte(static_cast<std::uint8_t>(rng()));
      return v;
    };
    auto concat = [](std::vector<std::byte> a, const std::vector<std::byte>& b) {
      a.insert(a.end(), b.begin(), b.end());
      return a;
    };
    const auto& stats = target.transport->stats();

    // 1. Random bytes: not a handshake.
    auto r = co_await speak(c.ctx, port, random_bytes(4096));
    REQUIRE(r.has_value());
    CHECK(r->empty());
    CHECK(c.logs.contains("bad handshake"));
    // 2. The wrong cluster id: refused, and the answer never comes.
    r = co_await speak(c.ctx, port, hello_bytes(78, 1));
    REQUIRE(r.has_value());
    CHECK(r->empty());
    CHECK(c.logs.contains("cluster id mismatch: 78 (ours 77)"));
    // 3. A higher id than the acceptor's: the lower id dials, so refused.
    r = co_await speak(c.ctx, port, hello_bytes(77, 9));
    REQUIRE(r.has_value());
    CHECK(r->empty());
    // 4. A good handshake (impersonating node 1), then a huge length prefix.
    // (Byte vectors are built outside co_await expressions: GCC 12 rejects initializer lists there.)
    const auto protocol_errors = stats.protocol_errors;
    const auto huge = le32(0xFFFFFFF0u);
    r = co_await speak(c.ctx, port, concat(hello_bytes(77, 1), huge));
    REQUIRE(r.has_value());
    CHECK(r->size() == codec::hello_bytes);  // the server's hello, then it closed
    CHECK(stats.protocol_errors == protocol_errors + 1);
    CHECK(c.logs.contains("frame length exceeds the limit"));
    // 5. A good handshake, then a frame of the right length full of garbage.
    auto garbage = random_bytes(64);
    garbage[0] = std::byte{9};  // not a codec version
    const auto length64 = le32(64);
    r = co_await speak(c.ctx, port, concat(concat(hello_bytes(77, 2), length64), garbage));
    REQUIRE(r.has_value());
    CHECK(stats.protocol_errors == protocol_errors + 2);
    // 6. A good handshake as node 2, then a well-formed message claiming to come from node 1:
    // dropped, the connection stays up until the client leaves (so read nothing more here).
    {
      std::vector<std::byte> frame;
      codec::encode_frame(message{node_id{1}, node_id{3}, vote_request{term_t{1000}, index_t{0}, term_t{0}, false}}, frame);
      const auto forged = stats.dropped_forged;
      tcp::socket s(c.ctx);
      co_await s.async_connect(tcp::endpoint(loopback, port), asio::use_awaitable);
      co_await asio::async_write(s, asio::buffer(concat(hello_bytes(77, 2), frame)), asio::use_awaitable);
      const auto until = std::chrono::steady_clock::now() + 20s;
      while (stats.dropped_forged == forged && std::chrono::steady_clock::now() < until) co_await c.sleep(10ms);
      CHECK(stats.dropped_forged == forged + 1);
      CHECK(c.at(node_id{3}).n->term() < term_t{1000});  // never reached the node
    }
    // 7. A client that connects and says nothing is dropped after connect_timeout.
    r = co_await speak(c.ctx, port, {});
    REQUIRE(r.has_value());
    CHECK(r->empty());

    // The impostors replaced the real connections from nodes 1 and 2 for a moment; the real
    // nodes dial again and the cluster goes on.
    REQUIRE(co_await c.put_range(30, 80, 4));
    CHECK(co_await c.converged(80));
    CHECK(stats.handshake_failures >= 4);
  });
}
