// examples/kv/kv_server.cpp - one member of a replicated key-value store, one process per node.
//
//   kv_server --id N --data DIR --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
//             --client-port P [--client-host 127.0.0.1] [--cluster-id X] [--no-fsync]
//             [--join] [--snapshot-every N] [--tls-cert FILE --tls-key FILE --tls-ca FILE]
//
// The process runs a raft::node<kv_state_machine, file_storage, tcp_transport> on one
// asio::io_context on one thread:
//   - Raft traffic goes over raft::tcp_transport, listening on this node's address in --peers;
//   - the log, term and vote live in raft::file_storage in --data (fsync on unless --no-fsync);
//   - the key-value map (raft::testing::kv_state_machine) lives in memory; a snapshot of it is
//     taken every --snapshot-every applied entries (default 10000, 0: never) and the log behind
//     it compacted, and a restart loads the newest snapshot and replays the log after it;
//   - a brand-new cluster (empty --data) bootstraps with every id listed in --peers as a voter;
//     with --join, the node bootstraps nothing and waits to be added (ADD on the leader);
//   - with --tls-cert/--tls-key/--tls-ca (all three), Raft traffic uses raft::tls_transport:
//     mutual TLS, each server's certificate signed by the --tls-ca CA and naming
//     "raft-node-<id>"; the client port speaks TLS too and takes any client certificate signed
//     by that CA. (Built in only when meson found OpenSSL: RAFT_KV_TLS.)
//
// Clients talk to --client-host:--client-port (default host 127.0.0.1), one command per line,
// one reply line per command (see README.md in this directory). Values are never empty, so a key
// either has a value or is missing, and a missing key answers NOTFOUND:
//   PUT key value      -> OK <previous value> | OK (the key was new)
//   GET key            -> OK <value> | NOTFOUND     linearizable (read barrier), on any node
//   DEL key            -> OK <deleted value> | NOTFOUND
//   APPEND key value   -> OK <new value>
//   LOCALGET key       -> OK <value> | NOTFOUND     this node's state machine, right now (may be stale)
//   STATUS             -> OK id=.. role=.. term=.. leader=.. commit=.. applied=.. last=.. durable=..
//   ADD id host:port   -> OK <index>            on the leader: id becomes a learner (its address
//                                               is replicated, so every node can reach it)
//   PROMOTE id         -> OK <index>            learner -> voter (joint consensus)
//   REMOVE id          -> OK <index>            voter or learner leaves (the leader too)
//   TRANSFER id        -> OK <new leader>       leadership transfer
// Errors: `ERR not_leader <leader id, 0 if unknown>`, `ERR leadership_lost` / `ERR stopped`
// (outcome unknown: the command may still be applied), `ERR busy`, `ERR timeout` (a GET whose
// read index no quorum confirmed in time: nothing was read, retry; or an abandoned TRANSFER),
// `ERR empty_value` (a PUT or APPEND without a value: refused, nothing done), `ERR <reason>`.
// GET waits for node.async_read_barrier() (ReadIndex: a heartbeat round on the leader, or the leader's
// read index on a follower) and then reads this node's state machine: linearizable, and no log
// entry. Member addresses live in the replicated map under keys "__peer/<id>"; every server
// tells its transport about new ones as they are applied.
//
// SIGINT or SIGTERM: stop accepting clients, `co_await node.async_stop()`, exit 0. A port that is taken
// (the Raft port, this node's address in --peers, or --client-port) ends the process at start
// with status 1 and a message naming that port.
#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <raft/raft.hpp>
#include <raft/storage/file.hpp>
#include <raft/testing/kv_state_machine.hpp>
#include <raft/transport/tcp.hpp>
#if RAFT_KV_TLS
#include <asio/ssl/stream.hpp>
#include <raft/transport/tls.hpp>
#endif

#include "client_port.hpp"
#include "client_protocol.hpp"
#include "command_line.hpp"
#include "network.hpp"
#include "server_lifetime.hpp"
#include "server_options.hpp"
#include "server_log.hpp"

namespace {

using namespace std::chrono_literals;
using kv_map = raft::testing::kv_state_machine;
using asio::ip::tcp;

#if RAFT_KV_TLS
constexpr bool built_with_tls = true;
#else
constexpr bool built_with_tls = false;
#endif

// ---- command line -------------------------------------------------------------------------------

/// kv_server's options: those of both servers, and its own.
struct config : kv::server_options {
  config() : server_options(0x4B56) {}  // cluster id "KV"
  bool join = false;  // start without bootstrapping: wait to be added
  kv::tls_files tls;  // all three, or none (no TLS)
};

config parse_args(int argc, char** argv) {
  config c;
  kv::command_line args(argc, argv, "kv_server",
                        config::usage("kv_server", {"--client-port P [--client-host H] [--cluster-id X] [--no-fsync]",
                                                    "[--join] [--snapshot-every N] [--tls-cert FILE --tls-key FILE "
                                                    "--tls-ca FILE]"}));
  c.read(args, "node", [&c](kv::command_line& a) {
    if (a.current() != "--join") return c.tls.read_option(a);
    c.join = true;
    return true;
  });
  c.tls.check(args, built_with_tls);
  return c;
}

// ---- the server ---------------------------------------------------------------------------------

/// `Transport`: raft::tcp_transport, or raft::tls_transport (then clients speak TLS too).
template <class Transport>
class server {
  using node_type = raft::node<kv_map, raft::file_storage, Transport>;
  static constexpr bool tls = !std::is_same_v<Transport, raft::tcp_transport>;

 public:
  server(asio::io_context& io, const config& cfg, typename Transport::security_type security = {})
      : io_(io),
        cfg_(cfg),
        log_("kv_server", cfg.id),
        storage_(cfg.data, make_storage_options(cfg)),
        transport_(kv::open_raft_transport<Transport>(io, cfg.id, cfg.peers, "this node's address in --peers",
                                                      cfg.cluster_id, log_.raft_logger(), std::move(security))),
        node_(io.get_executor(), make_node_options(cfg), sm_, storage_, transport_),
        clients_(io, cfg.client, log_),
        lifetime_(io, log_, [this] { shut_down(); }) {}

  /// Starts the node, the client listener, the periodic check and the signal handler.
  void start() {
    node_.start();  // loads the log from storage; bootstraps if it is empty
    const raft::node_status st = node_.status();
    log_.info("storage holds term ", st.term, " and log entries up to index ", st.last_log_index,
              st.last_log_index == raft::index_t{1} && st.durable_index == raft::index_t{0}
                  ? " (a new cluster: bootstrap entry written)"
                  : "");
    log_.info("listening for clients on ", clients_.local_endpoint(), tls ? " (TLS)" : "", ", data in ",
              cfg_.data.string(), cfg_.fsync ? " (fsync on)" : " (fsync OFF)");
    clients_.start([this](tcp::socket socket) { return session(std::move(socket)); });
    lifetime_.every(200ms, [this] { return check(); });
    lifetime_.watch_signals();
  }

  [[nodiscard]] int exit_code() const { return lifetime_.exit_code(); }

 private:
  // -- construction helpers

  static raft::file_storage_options make_storage_options(const config& c) {
    raft::file_storage_options o;
    o.fsync = c.fsync;
    return o;
  }
  raft::options make_node_options(const config& c) const {
    raft::options o;
    o.id = c.id;
    if (!c.join) {
      raft::configuration founders;
      for (const auto& [id, address] : c.peers) founders.voters.push_back(id);
      o.bootstrap = founders;  // used only when the storage is empty (a brand-new cluster)
    }
    o.snapshot_entries = c.snapshot_every;
    o.logger = log_.raft_logger();
    return o;
  }

  // -- shutdown

  void shut_down() {
    clients_.stop_accepting();
    asio::co_spawn(io_, stop_node(), asio::detached);
  }

  asio::awaitable<void> stop_node() {
    // Pending proposals complete with errc::stopped; their sessions answer and then find their
    // sockets closed below (or were already closed).
    co_await node_.async_stop();
    clients_.close_connections();
    log_.info("node stopped; exiting with status ", lifetime_.exit_code());
  }

  /// Every 200 ms. A storage failure (say, fsync failing) makes the node stop itself
  /// (fail-stop); the process then exits 1 rather than serve "ERR stopped" forever.
  asio::awaitable<void> check() {
    if (node_.failure()) {
      log_.info("the node failed; exiting");
      lifetime_.begin_shutdown(1);
      co_return;
    }
    learn_peer_addresses();
  }

  /// Tells the transport the address of every member added since (keys "__peer/<id>").
  void learn_peer_addresses() {
    const std::string prefix = "__peer/";
    for (auto it = sm_.data().lower_bound(prefix); it != sm_.data().end() && it->first.starts_with(prefix); ++it) {
      if (known_peers_.contains(it->first)) continue;
      known_peers_.insert(it->first);
      try {
        const raft::node_id id{std::stoull(it->first.substr(prefix.size()))};
        if (id == cfg_.id) continue;
        const auto colon = it->second.rfind(':');
        const raft::tcp_address address{it->second.substr(0, colon),
                                        static_cast<std::uint16_t>(std::stoul(it->second.substr(colon + 1)))};
        transport_.add_peer(id, address);
        log_.info("peer ", id, " is at ", it->second);
      } catch (const std::exception& e) {
        log_.info("ignoring bad peer address ", it->first, "=", it->second, ": ", e.what());
      }
    }
  }

  // -- clients

  /// One client connection: over TLS when the Raft traffic is (then first a TLS handshake that
  /// must finish within 10 s and in which the client presents a certificate signed by the CA).
  asio::awaitable<void> session(tcp::socket socket) {
    auto answer = [this](std::string_view line) { return handle(line); };
#if RAFT_KV_TLS
    if constexpr (tls) {
      // Shared with the time limit's handler, which may run after this coroutine has ended.
      auto stream = std::make_shared<asio::ssl::stream<tcp::socket>>(std::move(socket),
                                                                     *transport_.security().context());
      auto handshaking = std::make_shared<bool>(true);
      kv::client_port::tracked guard(clients_, stream->next_layer());
      const std::string who = describe(stream->next_layer());
      asio::steady_timer limit(io_, 10s);
      limit.async_wait([stream, handshaking](std::error_code ec) {
        std::error_code ignored;
        if (!ec && *handshaking) stream->next_layer().close(ignored);
      });
      std::error_code ec;
      co_await stream->async_handshake(asio::ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
      *handshaking = false;
      limit.cancel();
      if (ec) {
        log_.info("client ", who, ": TLS handshake failed: ", ec.message());
        co_return;
      }
      co_await kv::exchange_lines(*stream, stream->next_layer(), answer);
      co_return;
    }
#endif
    kv::client_port::tracked guard(clients_, socket);
    co_await kv::exchange_lines(socket, socket, answer);
  }

  static std::string describe(const tcp::socket& s) {
    std::error_code ec;
    std::ostringstream os;
    os << s.remote_endpoint(ec);
    return os.str();
  }

  /// Executes one command line; returns the reply without its newline.
  asio::awaitable<std::string> handle(std::string_view line) {
    const kv::request r = kv::split_request(line);
    const std::string& cmd = r.command;
    if (cmd == "STATUS") co_return status_line();
    if (cmd.empty()) co_return "ERR empty command";
    if (cmd == "ADD" || cmd == "PROMOTE" || cmd == "REMOVE" || cmd == "TRANSFER") co_return co_await admin(cmd, r.args);
    if (!kv::takes_value(cmd) && cmd != "GET" && cmd != "DEL" && cmd != "LOCALGET")
      co_return "ERR unknown command '" + cmd + "' (PUT, GET, DEL, APPEND, LOCALGET, STATUS, ADD, PROMOTE, REMOVE, TRANSFER)";
    const kv::key_args k = kv::parse_key_args(cmd, r.args);
    if (!k.refusal.empty()) co_return k.refusal;
    co_return co_await kv::answer_key_command(cmd, k, node_, sm_, lifetime_.shutting_down());
  }

  /// ADD id host:port | PROMOTE id | REMOVE id | TRANSFER id
  asio::awaitable<std::string> admin(const std::string& cmd, std::string_view args) {
    if (lifetime_.shutting_down()) co_return "ERR stopped";
    const auto sp = args.find(' ');
    const std::string id_text(args.substr(0, sp));
    const std::string rest(sp == std::string_view::npos ? std::string_view{} : args.substr(sp + 1));
    raft::node_id id;
    try {
      std::size_t used = 0;
      id = raft::node_id{std::stoull(id_text, &used)};
      if (used != id_text.size() || id == raft::no_node) throw std::invalid_argument("id");
    } catch (const std::exception&) {
      co_return "ERR usage: " + cmd + " <nonzero node id>" + (cmd == "ADD" ? " host:port" : "");
    }
    if ((cmd == "ADD") != !rest.empty()) co_return "ERR usage: ADD id host:port; " + cmd + " takes only an id";
    if (cmd == "TRANSFER") {
      auto r = co_await node_.async_transfer_leadership(id);
      if (!r) co_return kv::error_reply(r.error());
      co_return "OK " + std::to_string(r->value);
    }
    raft::result<raft::index_t> r = raft::error{raft::errc::invalid_argument};
    if (cmd == "ADD") {
      const auto colon = rest.rfind(':');
      if (colon == std::string::npos || colon == 0 || rest.find(' ') != std::string::npos)
        co_return "ERR usage: ADD id host:port";
      // The address goes into the replicated map first, so every member learns it.
      auto a = co_await node_.async_propose(kv_map::put("__peer/" + id_text, rest).bytes());
      if (!a) co_return kv::error_reply(a.error());
      learn_peer_addresses();
      r = co_await node_.async_add_learner(id);
    } else if (cmd == "PROMOTE") {
      r = co_await node_.async_promote(id);
    } else {
      r = co_await node_.async_remove(id);
    }
    if (!r) co_return kv::error_reply(r.error());
    co_return "OK " + std::to_string(r->value);
  }

  std::string status_line() const {
    const raft::node_status s = node_.status();
    std::ostringstream os;
    os << "OK";
    kv::write_node_status(os, s);
    os << " voters=" << s.config.voters.size() << " learners=" << s.config.learners.size();
    kv::write_map_status(os, sm_);
    return os.str();
  }

  asio::io_context& io_;
  const config& cfg_;
  kv::server_log log_;
  kv_map sm_;
  raft::file_storage storage_;
  Transport transport_;
  node_type node_;  // after what it refers to: destroyed first
  kv::client_port clients_;
  kv::server_lifetime lifetime_;
  std::set<std::string> known_peers_;  // "__peer/<id>" keys already given to the transport
};

/// Runs a server over `Transport` until it stops; returns the exit status.
template <class Transport>
int run(const config& cfg, typename Transport::security_type security = {}) {
  asio::io_context io;
  server<Transport> srv(io, cfg, std::move(security));
  srv.start();
  io.run();  // returns once the node has stopped and every session has ended
  return srv.exit_code();
}

#if RAFT_KV_TLS
/// The TLS set-up of --tls-*: the CA, this server's certificate and key; the certificate must
/// name "raft-node-<id>", or the peers would refuse it.
raft::mutual_tls make_tls(const config& cfg) {
  raft::tls_options o;
  o.cert_file = cfg.tls.cert;
  o.key_file = cfg.tls.key;
  o.ca_file = cfg.tls.ca;
  raft::mutual_tls tls(o);
  X509* own = SSL_CTX_get0_certificate(tls.context()->native_handle());
  const std::string name = tls.name_of(cfg.id);
  if (!own || X509_check_host(own, name.data(), name.size(), X509_CHECK_FLAG_NO_WILDCARDS, nullptr) != 1)
    throw std::runtime_error("--tls-cert " + cfg.tls.cert + " names " +
                             (own ? raft::tls_certificate_names(own) : std::string("nothing")) + ", not " + name +
                             ": the other servers would refuse it");
  return tls;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const config cfg = parse_args(argc, argv);
  return kv::run_or_report(kv::server_log("kv_server", cfg.id), [&] {
#if RAFT_KV_TLS
    if (cfg.tls.given()) return run<raft::tls_transport>(cfg, make_tls(cfg));
#endif
    return run<raft::tcp_transport>(cfg);
  });
}
