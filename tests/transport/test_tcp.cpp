// raft::tcp_transport over loopback: transports on their own, a 3-node cluster, restarts, clients
// that speak garbage, peers added and removed at run time, a peer that stops reading. Verdicts are
// about what arrives and what the replicas hold; time appears only as generous deadlines that
// fail a test instead of hanging it. The shared fixture is tcp_fixture.hpp.
#include "tcp_fixture.hpp"

#include <random>

using namespace tcp_test;
using tcp_cluster = cluster<tcp_transport>;

static_assert(raft::transport<tcp_transport>);

namespace {

std::unique_ptr<tcp_transport> make_plain(asio::io_context& ctx, node_id id, tcp::endpoint listen,
                                          std::map<node_id, tcp_address> peers, tcp_transport_options o) {
  return std::make_unique<tcp_transport>(ctx.get_executor(), id, listen, std::move(peers), std::move(o));
}

void run_scenario(std::function<asio::awaitable<void>(tcp_cluster&)> body) {
  tcp_test::run_scenario<tcp_transport>(make_plain, std::move(body));
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

// ---- membership at run time, and peers that stop reading --------------------------------------

TEST_CASE("tcp: add_peer connects a peer at run time; remove_peer disconnects it, stops dialling and refuses it") {
  asio::io_context ctx;
  log_capture logs;
  endpoint_under_test<tcp_transport> a, b;
  b.t = std::make_unique<tcp_transport>(ctx.get_executor(), node_id{2}, tcp::endpoint(loopback, 0),
                                        std::map<node_id, tcp_address>{}, fast_options(logs));
  a.t = std::make_unique<tcp_transport>(ctx.get_executor(), node_id{1}, tcp::endpoint(loopback, 0),
                                        std::map<node_id, tcp_address>{}, fast_options(logs));
  a.listen(ctx);
  b.listen(ctx);
  const tcp_address address_b{"127.0.0.1", b.t->local_endpoint().port()};
  const tcp_address address_a{"127.0.0.1", a.t->local_endpoint().port()};

  // Not a peer yet: the message waits in the queue until add_peer says where node 2 is.
  a.t->send(vote(node_id{1}, node_id{2}, 1));
  run_until(ctx, [] { return false; }, 100ms);
  CHECK(b.received->empty());
  a.t->add_peer(node_id{2}, address_b);
  REQUIRE(run_until(ctx, [&] { return b.received->size() == 1; }));
  b.t->send(vote(node_id{2}, node_id{1}, 1));
  REQUIRE(run_until(ctx, [&] { return a.received->size() == 1; }));

  // Removed on the dialling side: disconnected, not dialled again, later sends dropped.
  a.t->remove_peer(node_id{2});
  REQUIRE(run_until(ctx, [&] { return !a.t->connected(node_id{2}) && !b.t->connected(node_id{1}); }));
  const auto established = b.t->stats().connections_established;
  a.t->send(vote(node_id{1}, node_id{2}, 2));
  CHECK(a.t->stats().dropped_removed == 1);
  run_until(ctx, [] { return false; }, 500ms);  // a dialler would have dialled a few times by now
  CHECK(b.t->stats().connections_established == established);
  CHECK(b.t->stats().handshake_failures == 0);
  CHECK(b.received->size() == 1);

  // Added back: dialled again, messages flow.
  a.t->add_peer(node_id{2}, address_b);
  a.t->send(vote(node_id{1}, node_id{2}, 3));
  REQUIRE(run_until(ctx, [&] { return b.received->size() == 2; }));
  CHECK(b.received->back() == vote(node_id{1}, node_id{2}, 3));

  // Removed on the accepting side: the connection closes and node 1's redials are refused.
  b.t->remove_peer(node_id{1});
  REQUIRE(run_until(ctx, [&] { return b.t->stats().handshake_failures >= 2; }));
  CHECK(logs.contains("node 1 was removed"));
  CHECK_FALSE(b.t->connected(node_id{1}));
  // Added back (the acceptor only keeps the address): node 1's next dial is let in.
  b.t->add_peer(node_id{1}, address_a);
  b.t->send(vote(node_id{2}, node_id{1}, 4));
  REQUIRE(run_until(ctx, [&] { return a.received->size() == 2; }));
  CHECK(a.received->back() == vote(node_id{2}, node_id{1}, 4));

  a.t->close();
  b.t->close();
  REQUIRE(run_until(ctx, [&] { return *a.finished && *b.finished; }, 10s));
  a.t.reset();
  b.t.reset();
  CHECK(drains(ctx));
}

TEST_CASE("tcp: a peer that stops reading is disconnected after write_timeout, and dialled again") {
  asio::io_context ctx;
  log_capture logs;
  // A fake node 2: answers the handshake, then never reads again (a stuck process).
  tcp::acceptor fake(ctx, tcp::endpoint(loopback, 0));
  std::vector<std::shared_ptr<tcp::socket>> accepted;
  bool fake_done = false;
  asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    for (;;) {
      auto s = std::make_shared<tcp::socket>(ctx);
      std::error_code ec;
      co_await fake.async_accept(*s, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      std::array<std::byte, codec::hello_bytes> h{};
      co_await asio::async_read(*s, asio::buffer(h), asio::redirect_error(asio::use_awaitable, ec));
      const auto answer = hello_bytes(77, 2);
      if (!ec) co_await asio::async_write(*s, asio::buffer(answer), asio::redirect_error(asio::use_awaitable, ec));
      accepted.push_back(s);  // kept open, never read
    }
    fake_done = true;
  }, asio::detached);

  auto o = fast_options(logs);
  o.write_timeout = 300ms;
  auto a = std::make_unique<tcp_transport>(
      ctx.get_executor(), node_id{1}, tcp::endpoint(loopback, 0),
      std::map<node_id, tcp_address>{{node_id{2}, {"127.0.0.1", fake.local_endpoint().port()}}}, o);
  REQUIRE(run_until(ctx, [&] { return a->connected(node_id{2}); }));
  // 56 MiB: far more than the socket buffers of both ends hold (and within max_queue_bytes).
  for (std::uint64_t i = 1; i <= 56; ++i)
    a->send(message{node_id{1}, node_id{2},
                    append_request{term_t{1}, index_t{i - 1}, term_t{1}, index_t{0},
                                   {log_entry{term_t{1}, index_t{i}, entry_kind::command,
                                              buffer{std::vector<std::byte>(std::size_t{1} << 20)}}}}});
  REQUIRE(run_until(ctx, [&] { return a->stats().write_timeouts >= 1; }, 30s));
  CHECK(logs.contains("did not complete within 300 ms"));
  // The dialler dials again.
  REQUIRE(run_until(ctx, [&] { return accepted.size() >= 2; }, 30s));

  a->close();
  std::error_code ignored;
  fake.close(ignored);
  for (auto& s : accepted) s->close(ignored);
  REQUIRE(run_until(ctx, [&] { return fake_done; }, 10s));
  a.reset();
  CHECK(drains(ctx));
}
