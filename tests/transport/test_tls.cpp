// raft::tls_transport (raft/transport/tls.hpp) over loopback: mutual TLS with the node id checked
// against the certificate. Certificates are made for each test in a temporary directory
// (tls_certs.hpp). Built only when meson finds OpenSSL.
#include "tcp_fixture.hpp"
#include "tls_certs.hpp"

#include <cstring>

#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>

#include "raft/transport/tls.hpp"

using namespace tcp_test;
using tls_cluster = cluster<tls_transport>;

static_assert(raft::transport<tls_transport>);

namespace {

/// A CA, another CA, and the certificates the tests hand out.
struct tls_env {
  test_pki pki;
  test_pki::authority ca = pki.make_ca("raft test CA");
  test_pki::authority other_ca = pki.make_ca("some other CA");

  /// Node `id`'s certificate from the cluster's CA, and options that trust that CA.
  tls_options node(std::uint64_t id) { return test_pki::options(ca, pki.issue_node(ca, id)); }
};

using tls_endpoint = endpoint_under_test<tls_transport>;

std::unique_ptr<tls_transport> make_tls(asio::io_context& ctx, std::uint64_t id, const tls_options& tls,
                                        const log_capture& logs, std::map<node_id, tcp_address> peers = {},
                                        std::uint16_t port = 0) {
  return std::make_unique<tls_transport>(ctx.get_executor(), node_id{id}, tcp::endpoint(loopback, port),
                                         std::move(peers), fast_options(logs), mutual_tls(tls));
}

/// Node 2 (accepts) with `tls2`, node 1 (dials node 2) with `tls1`; each sends the other a
/// message. Runs until `stop(a, b)` holds (at most 20 s); returns whether both messages arrived
/// by then. Closes and drains.
bool pair(const tls_options& tls1, const tls_options& tls2, log_capture& logs,
          const std::function<bool(tls_endpoint&, tls_endpoint&)>& stop) {
  asio::io_context ctx;
  tls_endpoint a, b;
  b.t = make_tls(ctx, 2, tls2, logs);
  a.t = make_tls(ctx, 1, tls1, logs, {{node_id{2}, {"127.0.0.1", b.t->local_endpoint().port()}}});
  a.listen(ctx);
  b.listen(ctx);
  a.t->send(vote(node_id{1}, node_id{2}, 1));
  b.t->send(vote(node_id{2}, node_id{1}, 1));
  CHECK(run_until(ctx, [&] { return stop(a, b); }, 20s));
  const bool both = a.received->size() == 1 && b.received->size() == 1;
  a.t->close();
  b.t->close();
  CHECK(run_until(ctx, [&] { return *a.finished && *b.finished; }, 10s));
  a.t.reset();
  b.t.reset();
  CHECK(drains(ctx));
  return both;
}

bool exchanged(tls_endpoint& a, tls_endpoint& b) {
  return a.received->size() == 1 && b.received->size() == 1;
}

}  // namespace

TEST_CASE("tls: two transports exchange small and large messages both ways over mutual TLS") {
  tls_env env;
  asio::io_context ctx;
  log_capture logs;
  tls_endpoint a, b;
  b.t = make_tls(ctx, 2, env.node(2), logs);
  a.t = make_tls(ctx, 1, env.node(1), logs, {{node_id{2}, {"127.0.0.1", b.t->local_endpoint().port()}}});
  a.listen(ctx);
  b.listen(ctx);
  for (std::uint64_t t = 1; t <= 300; ++t) b.t->send(vote(node_id{2}, node_id{1}, t));
  for (std::uint64_t t = 1; t <= 300; ++t) a.t->send(vote(node_id{1}, node_id{2}, t));
  // 4 MiB in one message: many TLS records, several reads.
  append_request big{term_t{3}, index_t{0}, term_t{0}, index_t{0}, {}};
  for (std::uint64_t i = 1; i <= 64; ++i)
    big.entries.push_back(log_entry{term_t{3}, index_t{i}, entry_kind::command,
                                    buffer{std::vector<std::byte>(std::size_t{64} << 10, std::byte(i))}});
  a.t->send(message{node_id{1}, node_id{2}, big});
  b.t->send(message{node_id{2}, node_id{1}, big});

  REQUIRE(run_until(ctx, [&] { return a.received->size() == 301 && b.received->size() == 301; }));
  for (std::uint64_t t = 1; t <= 300; ++t) {
    CHECK(a.received->at(t - 1) == vote(node_id{2}, node_id{1}, t));
    CHECK(b.received->at(t - 1) == vote(node_id{1}, node_id{2}, t));
  }
  CHECK(a.received->back() == message{node_id{2}, node_id{1}, big});
  CHECK(b.received->back() == message{node_id{1}, node_id{2}, big});
  CHECK(a.t->connected(node_id{2}));
  CHECK(a.t->stats().connections_established == 1);
  CHECK(b.t->stats().connections_established == 1);
  CHECK(a.t->stats().handshake_failures == 0);
  CHECK(b.t->stats().handshake_failures == 0);
  CHECK(a.t->security().name_of(node_id{7}) == "raft-node-7");

  a.t->close();
  b.t->close();
  REQUIRE(run_until(ctx, [&] { return *a.finished && *b.finished; }, 10s));
  a.t.reset();
  b.t.reset();
  CHECK(drains(ctx));
}

TEST_CASE("tls: a 3-node cluster elects and replicates over mutual TLS; a restarted follower catches up") {
  tls_env env;
  std::map<std::uint64_t, tls_options> certs;
  for (std::uint64_t id = 1; id <= 3; ++id) certs[id] = env.node(id);
  auto make = [&](asio::io_context& ctx, node_id id, tcp::endpoint listen, std::map<node_id, tcp_address> peers,
                  tcp_transport_options o) {
    return std::make_unique<tls_transport>(ctx.get_executor(), id, listen, std::move(peers), std::move(o),
                                           mutual_tls(certs.at(id.value)));
  };
  run_scenario<tls_transport>(make, [](tls_cluster& c) -> asio::awaitable<void> {
    REQUIRE(co_await c.put_range(0, 200, 8));
    CHECK(co_await c.converged(200));
    const node_id leader = c.leader();
    CHECK(leader != no_node);
    // Restart a follower: it reconnects (a new TLS handshake) and catches up.
    node_id follower = leader == node_id{1} ? node_id{2} : node_id{1};
    co_await c.stop(c.at(follower));
    REQUIRE(co_await c.put_range(200, 250, 4));
    c.start(c.at(follower));
    CHECK(co_await c.converged(250));
    for (auto& m : c.members) {
      CHECK(m->transport->stats().protocol_errors == 0);
      CHECK(m->transport->stats().handshake_failures == 0);
      CHECK(m->transport->stats().dropped_forged == 0);
    }
  });
}

TEST_CASE("tls: a certificate from another CA is refused, on either side of the dial") {
  tls_env env;
  // The impostor trusts the cluster's CA but presents a certificate of the right name from another.
  auto impostor = [&](std::uint64_t id) {
    return test_pki::options(env.ca, env.pki.issue_node(env.other_ca, id, "other"));
  };
  SUBCASE("the dialler's certificate") {
    log_capture logs;
    CHECK_FALSE(pair(impostor(1), env.node(2), logs, [](tls_endpoint& a, tls_endpoint& b) {
      return exchanged(a, b) || b.t->stats().handshake_failures >= 3;
    }));
    CHECK(logs.contains_all({"tcp_transport 2", "closing inbound connection", "TLS handshake failed",
                             "certificate verify failed", "unable to get local issuer certificate"}));
  }
  SUBCASE("the acceptor's certificate") {
    log_capture logs;
    CHECK_FALSE(pair(env.node(1), impostor(2), logs, [](tls_endpoint& a, tls_endpoint& b) {
      return exchanged(a, b) || a.t->stats().handshake_failures >= 3;
    }));
    CHECK(logs.contains_all({"tcp_transport 1", "closing the connection to node 2", "TLS handshake failed",
                             "certificate verify failed"}));
  }
  SUBCASE("a self-signed certificate") {
    log_capture logs;
    const tls_options o = test_pki::options(env.ca, env.pki.self_signed("selfsigned1", {"raft-node-1", {"raft-node-1"}}));
    CHECK_FALSE(pair(o, env.node(2), logs, [](tls_endpoint& a, tls_endpoint& b) {
      return exchanged(a, b) || b.t->stats().handshake_failures >= 3;
    }));
    CHECK(logs.contains_all({"tcp_transport 2", "closing inbound connection", "certificate verify failed"}));
  }
}

TEST_CASE("tls: a certificate naming another node is refused, on either side of the dial") {
  tls_env env;
  // Signed by the right CA, but for node 3.
  auto wrong = [&] { return test_pki::options(env.ca, env.pki.issue_node(env.ca, 3, "wrong")); };
  SUBCASE("the dialler claims node 1 with node 3's certificate") {
    log_capture logs;
    CHECK_FALSE(pair(wrong(), env.node(2), logs, [](tls_endpoint& a, tls_endpoint& b) {
      return exchanged(a, b) || b.t->stats().handshake_failures >= 3;
    }));
    CHECK(logs.contains_all({"tcp_transport 2", "refusing inbound connection",
                             "certificate names DNS:raft-node-3, CN=raft-node-3, not raft-node-1"}));
  }
  SUBCASE("the acceptor answers for node 2 with node 3's certificate") {
    log_capture logs;
    CHECK_FALSE(pair(env.node(1), wrong(), logs, [](tls_endpoint& a, tls_endpoint& b) {
      return exchanged(a, b) || a.t->stats().handshake_failures >= 3;
    }));
    // The dialler checks before it sends its handshake: node 2's transport saw no Raft handshake.
    CHECK(logs.contains_all({"tcp_transport 1", "refusing the connection to node 2",
                             "certificate names DNS:raft-node-3, CN=raft-node-3, not raft-node-2"}));
  }
}

TEST_CASE("tls: the name check takes DNS names first, the CN only without them, or a custom mapping; key usage") {
  tls_env env;
  auto with = [&](std::uint64_t id, const test_pki::names& n) {
    return test_pki::options(env.ca, env.pki.issue(env.ca, "custom" + std::to_string(id) + n.cn, n));
  };
  SUBCASE("CN only, no subjectAltName: the CN counts") {
    log_capture logs;
    CHECK(pair(with(1, {"raft-node-1", {}}), with(2, {"raft-node-2", {}}), logs, exchanged));
  }
  SUBCASE("a DNS name that matches, a CN that does not: accepted") {
    log_capture logs;
    CHECK(pair(with(1, {"whatever", {"other-name", "raft-node-1"}}), env.node(2), logs, exchanged));
  }
  SUBCASE("a CN that matches, DNS names that do not: refused") {
    log_capture logs;
    CHECK_FALSE(pair(with(1, {"raft-node-1", {"raft-node-10"}}), env.node(2), logs,
                     [](tls_endpoint& a, tls_endpoint& b) {
                       return exchanged(a, b) || b.t->stats().handshake_failures >= 2;
                     }));
    CHECK(logs.contains("certificate names DNS:raft-node-10, CN=raft-node-1, not raft-node-1"));
  }
  SUBCASE("no extendedKeyUsage: accepted in both roles") {
    log_capture logs;
    CHECK(pair(with(1, {"raft-node-1", {"raft-node-1"}, ""}), with(2, {"raft-node-2", {"raft-node-2"}, ""}), logs,
               exchanged));
  }
  SUBCASE("extendedKeyUsage serverAuth only: refused when that node dials") {
    log_capture logs;
    CHECK_FALSE(pair(with(1, {"raft-node-1", {"raft-node-1"}, "serverAuth"}), env.node(2), logs,
                     [](tls_endpoint& a, tls_endpoint& b) {
                       return exchanged(a, b) || b.t->stats().handshake_failures >= 2;
                     }));
    CHECK(logs.contains_all({"tcp_transport 2", "closing inbound connection", "certificate verify failed"}));
  }
  SUBCASE("a custom mapping from id to name") {
    log_capture logs;
    auto name = [](node_id id) { return "member" + std::to_string(id.value) + ".raft.internal"; };
    auto o1 = with(1, {"", {"member1.raft.internal"}});
    auto o2 = with(2, {"", {"member2.raft.internal"}});
    o1.node_name = o2.node_name = name;
    CHECK(pair(o1, o2, logs, exchanged));
    // A certificate with the default name does not pass that mapping.
    log_capture refused;
    auto d1 = env.node(1);
    d1.node_name = name;
    CHECK_FALSE(pair(d1, o2, refused, [](tls_endpoint& a, tls_endpoint& b) {
      return exchanged(a, b) || b.t->stats().handshake_failures >= 2;
    }));
    CHECK(refused.contains("certificate names DNS:raft-node-1, CN=raft-node-1, not member1.raft.internal"));
  }
}

TEST_CASE("tls: plaintext clients, plaintext transports and clients without a certificate are dropped") {
  tls_env env;
  asio::io_context ctx;
  log_capture logs;
  tls_endpoint b;
  b.t = make_tls(ctx, 2, env.node(2), logs);
  b.listen(ctx);
  const auto port = b.t->local_endpoint().port();
  const auto& stats = b.t->stats();
  bool done = false;
  std::exception_ptr failure;
  asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
    // 1. A plaintext Raft handshake: the TLS handshake fails, the connection is closed, no Raft
    //    handshake comes back (at most a TLS alert).
    auto r = co_await speak(ctx, port, hello_bytes(77, 1));
    REQUIRE(r.has_value());
    CHECK((r->size() < 4 || std::memcmp(r->data(), "RAFT", 4) != 0));
    CHECK(stats.handshake_failures == 1);
    CHECK(logs.contains_all({"closing inbound connection", "TLS handshake failed"}));
    // 2. Garbage.
    std::vector<std::byte> garbage(3000, std::byte{0x42});
    r = co_await speak(ctx, port, garbage);
    REQUIRE(r.has_value());
    CHECK(stats.handshake_failures == 2);
    // 3. A client that connects and says nothing: dropped after connect_timeout.
    r = co_await speak(ctx, port, {});
    REQUIRE(r.has_value());
    CHECK(r->empty());
    CHECK(stats.handshake_failures == 3);
    CHECK(logs.contains("timed out before the handshake was complete"));
    // 4. A TLS client that trusts the CA but has no certificate: refused.
    {
      asio::ssl::context client_ctx(asio::ssl::context::tls_client);
      client_ctx.load_verify_file(env.ca.cert_file);
      client_ctx.set_verify_mode(asio::ssl::verify_peer);
      asio::ssl::stream<tcp::socket> s(ctx, client_ctx);
      co_await s.next_layer().async_connect(tcp::endpoint(loopback, port), asio::use_awaitable);
      std::error_code ec;
      co_await s.async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
      // TLS 1.3: the client finishes first and learns of the refusal on its next read.
      const auto hello = hello_bytes(77, 1);
      if (!ec) co_await asio::async_write(s, asio::buffer(hello), asio::redirect_error(asio::use_awaitable, ec));
      std::array<std::byte, codec::hello_bytes> answer{};
      if (!ec) co_await asio::async_read(s, asio::buffer(answer), asio::redirect_error(asio::use_awaitable, ec));
      CHECK(ec);
      CHECK(stats.handshake_failures == 4);
      CHECK(logs.contains_all({"closing inbound connection", "peer did not return a certificate"}));
    }
    CHECK(stats.connections_established == 0);
    CHECK(b.received->empty());
  }, [&](std::exception_ptr e) {
    done = true;
    failure = e;
  });
  REQUIRE(run_until(ctx, [&] { return done; }, 120s));
  if (failure) std::rethrow_exception(failure);

  // 5. Plaintext and TLS transports never connect, whichever dials.
  log_capture mixed;
  {
    tls_endpoint t2;
    t2.t = make_tls(ctx, 2, env.node(2), mixed);
    auto plain1 = std::make_unique<tcp_transport>(
        ctx.get_executor(), node_id{1}, tcp::endpoint(loopback, 0),
        std::map<node_id, tcp_address>{{node_id{2}, {"127.0.0.1", t2.t->local_endpoint().port()}}}, fast_options(mixed));
    auto plain3 = std::make_unique<tcp_transport>(ctx.get_executor(), node_id{3}, tcp::endpoint(loopback, 0),
                                                  std::map<node_id, tcp_address>{}, fast_options(mixed));
    t2.t->add_peer(node_id{3}, {"127.0.0.1", plain3->local_endpoint().port()});
    plain1->send(vote(node_id{1}, node_id{2}, 1));
    t2.t->send(vote(node_id{2}, node_id{3}, 1));
    REQUIRE(run_until(ctx, [&] {
      return t2.t->stats().handshake_failures >= 2 && plain3->stats().handshake_failures >= 2;
    }));
    CHECK_FALSE(t2.t->connected(node_id{1}));
    CHECK_FALSE(t2.t->connected(node_id{3}));
    CHECK(plain3->stats().connections_established == 0);
    CHECK(mixed.contains_all({"tcp_transport 3", "refusing inbound connection", "bad handshake"}));
    plain1->close();
    plain3->close();
    t2.t->close();
  }

  b.t->close();
  REQUIRE(run_until(ctx, [&] { return *b.finished; }, 10s));
  b.t.reset();
  CHECK(drains(ctx));
}

TEST_CASE("tls: unusable certificate files are reported with their names") {
  tls_env env;
  tls_options good = env.node(1);
  auto message_of = [](const tls_options& o) -> std::string {
    try {
      mutual_tls m(o);
      return "";
    } catch (const std::runtime_error& e) {
      return e.what();
    }
  };
  CHECK(message_of(good).empty());
  tls_options o = good;
  o.ca_file = (env.pki.dir() / "missing.pem").string();
  CHECK(message_of(o).find("cannot load the CA certificate file '" + o.ca_file + "'") != std::string::npos);
  o = good;
  o.cert_file = (env.pki.dir() / "missing.pem").string();
  CHECK(message_of(o).find("cannot load the certificate file") != std::string::npos);
  o = good;
  o.key_file = env.node(2).key_file;  // another certificate's key
  CHECK(message_of(o).find("'" + o.key_file + "'") != std::string::npos);
  o = good;
  o.key_file.clear();
  CHECK(message_of(o).find("all required") != std::string::npos);
}
