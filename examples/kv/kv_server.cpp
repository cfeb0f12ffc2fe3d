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
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <raft/raft.hpp>
#include <raft/storage/file.hpp>
#include <raft/testing/kv_state_machine.hpp>
#include <raft/transport/tcp.hpp>
#if RAFT_KV_TLS
#include <asio/ssl/stream.hpp>
#include <raft/transport/tls.hpp>
#endif

#include "address_list.hpp"

namespace {

using namespace std::chrono_literals;
using kv = raft::testing::kv_state_machine;
using asio::ip::tcp;

constexpr std::size_t max_line_bytes = std::size_t{1} << 20;

// ---- command line -------------------------------------------------------------------------------

struct config {
  raft::node_id id;
  std::filesystem::path data;
  std::map<raft::node_id, raft::tcp_address> peers;  // every member, this one included
  std::string client_host = "127.0.0.1";
  std::uint16_t client_port = 0;
  std::uint64_t cluster_id = 0x4B56;  // "KV"
  bool fsync = true;
  bool join = false;                      // start without bootstrapping: wait to be added
  std::uint64_t snapshot_every = 10000;   // applied entries between snapshots (0: none)
  std::string tls_cert, tls_key, tls_ca;  // all three, or none (no TLS)
  [[nodiscard]] bool tls() const { return !tls_cert.empty(); }
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "kv_server: %s\n"
               "usage: kv_server --id N --data DIR --peers 1=HOST:PORT,2=HOST:PORT,...\n"
               "                 --client-port P [--client-host H] [--cluster-id X] [--no-fsync]\n"
               "                 [--join] [--snapshot-every N] [--tls-cert FILE --tls-key FILE --tls-ca FILE]\n",
               why.c_str());
  std::exit(2);
}

std::uint64_t parse_number(std::string_view text, const char* what, std::uint64_t max) {
  const std::string s(text);
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 0);
  if (s.empty() || s[0] == '-' || *end != '\0' || errno != 0 || v > max)
    usage(std::string("bad ") + what + ": '" + s + "'");
  return v;
}

/// "1=127.0.0.1:7001,2=host:7002" -> {1: (127.0.0.1, 7001), 2: (host, 7002)}
std::map<raft::node_id, raft::tcp_address> parse_peers(std::string_view list) {
  std::map<raft::node_id, raft::tcp_address> out;
  try {
    for (auto& [id, a] : ::kv::parse_address_list(list)) {
      if (id == 0) usage("node id 0 is reserved");
      out.emplace(raft::node_id{id},
                  raft::tcp_address{a.host, static_cast<std::uint16_t>(parse_number(a.port, "port", 65535))});
    }
  } catch (const std::invalid_argument& e) {
    usage(std::string("--peers: ") + e.what());
  }
  return out;
}

config parse_args(int argc, char** argv) {
  config c;
  bool have_id = false, have_port = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage(std::string(arg) + " needs a value");
      return argv[++i];
    };
    if (arg == "--id") {
      c.id = raft::node_id{parse_number(value(), "--id", UINT64_MAX)};
      have_id = true;
    } else if (arg == "--data") {
      c.data = std::string(value());
    } else if (arg == "--peers") {
      c.peers = parse_peers(value());
    } else if (arg == "--client-port") {
      c.client_port = static_cast<std::uint16_t>(parse_number(value(), "--client-port", 65535));
      have_port = true;
    } else if (arg == "--client-host") {
      c.client_host = std::string(value());
    } else if (arg == "--cluster-id") {
      c.cluster_id = parse_number(value(), "--cluster-id", UINT64_MAX);
    } else if (arg == "--join") {
      c.join = true;
    } else if (arg == "--snapshot-every") {
      c.snapshot_every = parse_number(value(), "--snapshot-every", UINT64_MAX);
    } else if (arg == "--no-fsync") {
      c.fsync = false;
    } else if (arg == "--tls-cert") {
      c.tls_cert = std::string(value());
    } else if (arg == "--tls-key") {
      c.tls_key = std::string(value());
    } else if (arg == "--tls-ca") {
      c.tls_ca = std::string(value());
    } else if (arg == "-h" || arg == "--help") {
      usage("help");
    } else {
      usage("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (!have_id || c.id == raft::no_node) usage("--id is required (nonzero)");
  if (c.data.empty()) usage("--data is required");
  if (c.peers.empty()) usage("--peers is required");
  if (!c.peers.contains(c.id)) usage("--peers must list this node's own id and address");
  if (!have_port) usage("--client-port is required");
  const int tls_given = int(!c.tls_cert.empty()) + int(!c.tls_key.empty()) + int(!c.tls_ca.empty());
  if (tls_given != 0 && tls_given != 3) usage("--tls-cert, --tls-key and --tls-ca go together");
#if !RAFT_KV_TLS
  if (tls_given != 0) usage("built without TLS support (OpenSSL was not found when it was configured)");
#endif
  return c;
}

/// Resolves HOST:PORT to one endpoint (numeric addresses need no lookup).
tcp::endpoint resolve(asio::io_context& io, const std::string& host, std::uint16_t port) {
  std::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (!ec) return {address, port};
  tcp::resolver resolver(io);
  const auto results = resolver.resolve(host, std::to_string(port));  // throws if it cannot
  return *results.begin();
}

/// Returns `open()`, which constructs what listens on HOST:PORT. Asio's "bind: Address already in
/// use" does not say which of the server's two ports is taken: this error does (`port_name` and
/// the `option` it was given by).
template <class Open>
auto listen_on(const char* port_name, const char* option, const std::string& host, std::uint16_t port,
               Open open) -> decltype(open()) {
  try {
    return open();
  } catch (const std::system_error& e) {
    const std::string where =
        std::string("the ") + port_name + " " + host + ":" + std::to_string(port) + " (" + option + ")";
    if (e.code() == asio::error::address_in_use) throw std::runtime_error(where + " is already in use");
    throw std::runtime_error("cannot listen on " + where + ": " + e.code().message());
  }
}

// ---- the server ---------------------------------------------------------------------------------

/// `Transport`: raft::tcp_transport, or raft::tls_transport (then clients speak TLS too).
template <class Transport>
class server {
  using node_type = raft::node<kv, raft::file_storage, Transport>;
  static constexpr bool tls = !std::is_same_v<Transport, raft::tcp_transport>;

 public:
  server(asio::io_context& io, const config& cfg, typename Transport::security_type security = {})
      : io_(io),
        cfg_(cfg),
        prefix_("[kv_server " + std::to_string(cfg.id.value) + "] "),
        storage_(cfg.data, make_storage_options(cfg)),
        transport_(listen_on("Raft port", "this node's address in --peers", cfg.peers.at(cfg.id).host,
                             cfg.peers.at(cfg.id).port,
                             [&] {
                               return Transport(io.get_executor(), cfg.id,
                                                resolve(io, cfg.peers.at(cfg.id).host, cfg.peers.at(cfg.id).port),
                                                other_peers(cfg), make_transport_options(cfg), std::move(security));
                             })),
        node_(io.get_executor(), make_node_options(cfg), sm_, storage_, transport_),
        acceptor_(listen_on("client port", "--client-port", cfg.client_host, cfg.client_port,
                            [&] { return tcp::acceptor(io, resolve(io, cfg.client_host, cfg.client_port)); })),
        signals_(io, SIGINT, SIGTERM),
        watchdog_(io) {}

  /// Starts the node, the client listener and the signal handler.
  void start() {
    node_.start();  // loads the log from storage; bootstraps if it is empty
    const raft::node_status st = node_.status();
    log("storage holds term ", st.term, " and log entries up to index ", st.last_log_index,
        st.last_log_index == raft::index_t{1} && st.durable_index == raft::index_t{0}
            ? " (a new cluster: bootstrap entry written)"
            : "");
    log("listening for clients on ", acceptor_.local_endpoint(), tls ? " (TLS)" : "", ", data in ",
        cfg_.data.string(), cfg_.fsync ? " (fsync on)" : " (fsync OFF)");
    asio::co_spawn(io_, accept_loop(), asio::detached);
    asio::co_spawn(io_, failure_watch(), asio::detached);
    signals_.async_wait([this](std::error_code ec, int signo) {
      if (ec) return;
      log("signal ", signo, ": shutting down");
      begin_shutdown(0);
    });
  }

  [[nodiscard]] int exit_code() const { return exit_code_; }

 private:
  // -- construction helpers

  raft::logger make_logger() const {
    raft::logger l;
    l.min_level = raft::log_level::info;
    l.sink = [prefix = prefix_](raft::log_level level, std::string_view text) {
      std::fprintf(stderr, "%s%s: %.*s\n", prefix.c_str(), raft::to_string(level),
                   static_cast<int>(text.size()), text.data());
    };
    return l;
  }
  static raft::file_storage_options make_storage_options(const config& c) {
    raft::file_storage_options o;
    o.fsync = c.fsync;
    return o;
  }
  raft::tcp_transport_options make_transport_options(const config& c) const {
    raft::tcp_transport_options o;
    o.cluster_id = c.cluster_id;
    o.logger = make_logger();
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
    o.logger = make_logger();
    return o;
  }
  static std::map<raft::node_id, raft::tcp_address> other_peers(const config& c) {
    auto peers = c.peers;
    peers.erase(c.id);
    return peers;
  }

  template <class... Parts>
  void log(const Parts&... parts) const {
    std::ostringstream os;
    os << prefix_ << "info: ";
    (os << ... << parts);
    os << '\n';
    std::fputs(os.str().c_str(), stderr);
  }

  // -- shutdown

  void begin_shutdown(int code) {
    if (shutting_down_) return;
    shutting_down_ = true;
    exit_code_ = code;
    std::error_code ignored;
    acceptor_.close(ignored);
    signals_.cancel(ignored);
    watchdog_.cancel();
    asio::co_spawn(io_, shutdown(), asio::detached);
  }

  asio::awaitable<void> shutdown() {
    // Pending proposals complete with errc::stopped; their sessions answer and then find their
    // sockets closed below (or were already closed).
    co_await node_.async_stop();
    std::error_code ignored;
    for (tcp::socket* s : sessions_) s->close(ignored);
    log("node stopped; exiting with status ", exit_code_);
  }

  /// A storage failure (say, fsync failing) makes the node stop itself (fail-stop); the process
  /// then exits 1 rather than serve "ERR stopped" forever.
  asio::awaitable<void> failure_watch() {
    std::error_code ec;
    while (!shutting_down_) {
      watchdog_.expires_after(200ms);
      co_await watchdog_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!shutting_down_ && node_.failure()) {
        log("the node failed; exiting");
        begin_shutdown(1);
      }
      if (!shutting_down_) learn_peer_addresses();
    }
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
        log("peer ", id, " is at ", it->second);
      } catch (const std::exception& e) {
        log("ignoring bad peer address ", it->first, "=", it->second, ": ", e.what());
      }
    }
  }

  // -- clients

  asio::awaitable<void> accept_loop() {
    for (;;) {
      std::error_code ec;
      tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (shutting_down_) co_return;
        log("accept failed: ", ec.message());
        continue;
      }
      asio::co_spawn(io_, session(std::move(socket)), asio::detached);
    }
  }

  /// One client connection: over TLS when the Raft traffic is (then first a TLS handshake that
  /// must finish within 10 s and in which the client presents a certificate signed by the CA).
  asio::awaitable<void> session(tcp::socket socket) {
#if RAFT_KV_TLS
    if constexpr (tls) {
      // Shared with the time limit's handler, which may run after this coroutine has ended.
      auto stream = std::make_shared<asio::ssl::stream<tcp::socket>>(std::move(socket),
                                                                     *transport_.security().context());
      auto handshaking = std::make_shared<bool>(true);
      session_guard guard{sessions_, &stream->next_layer()};
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
        log("client ", who, ": TLS handshake failed: ", ec.message());
        co_return;
      }
      co_await serve(*stream, stream->next_layer());
      co_return;
    }
#endif
    session_guard guard{sessions_, &socket};
    co_await serve(socket, socket);
  }

  /// Keeps a client socket in sessions_ (closed at shutdown) while the session runs.
  struct session_guard {
    std::set<tcp::socket*>& set;
    tcp::socket* s;
    session_guard(std::set<tcp::socket*>& st, tcp::socket* sock) : set(st), s(sock) { set.insert(s); }
    ~session_guard() { set.erase(s); }
    session_guard(const session_guard&) = delete;
    session_guard& operator=(const session_guard&) = delete;
  };

  static std::string describe(const tcp::socket& s) {
    std::error_code ec;
    std::ostringstream os;
    os << s.remote_endpoint(ec);
    return os.str();
  }

  /// Reads a line, answers a line, until the client closes. `raw` is the TCP socket under `stream`.
  template <class Stream>
  asio::awaitable<void> serve(Stream& stream, tcp::socket& raw) {
    std::string in;
    for (;;) {
      std::error_code ec;
      const std::size_t n = co_await asio::async_read_until(
          stream, asio::dynamic_buffer(in, max_line_bytes), '\n',
          asio::redirect_error(asio::use_awaitable, ec));
      std::string reply;
      bool close_after = false;
      if (ec == asio::error::not_found) {
        reply = "ERR line too long\n";
        close_after = true;
      } else if (ec) {
        co_return;  // closed by the client, or by our shutdown
      } else {
        std::string line = in.substr(0, n - 1);
        in.erase(0, n);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        reply = co_await handle(line);
        reply += '\n';
      }
      if (!raw.is_open()) co_return;
      co_await asio::async_write(stream, asio::buffer(reply), asio::redirect_error(asio::use_awaitable, ec));
      if (ec || close_after) co_return;
    }
  }

  /// Executes one command line; returns the reply without its newline.
  asio::awaitable<std::string> handle(std::string_view line) {
    // COMMAND [key [value...]]: the value is everything after the key and one space.
    auto next_word = [&line]() {
      const auto sp = line.find(' ');
      const std::string_view word = line.substr(0, sp);
      line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
      return word;
    };
    std::string cmd(next_word());
    for (char& ch : cmd) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));

    if (cmd == "STATUS") co_return status_line();
    if (cmd.empty()) co_return "ERR empty command";
    if (cmd == "ADD" || cmd == "PROMOTE" || cmd == "REMOVE" || cmd == "TRANSFER") co_return co_await admin(cmd, line);

    const bool has_value = cmd == "PUT" || cmd == "APPEND";
    if (!has_value && cmd != "GET" && cmd != "DEL" && cmd != "LOCALGET")
      co_return "ERR unknown command '" + cmd + "' (PUT, GET, DEL, APPEND, LOCALGET, STATUS, ADD, PROMOTE, REMOVE, TRANSFER)";
    std::string_view key;
    std::string_view value;
    if (has_value) {
      const auto sp = line.find(' ');
      if (sp == std::string_view::npos) co_return "ERR usage: " + cmd + " key value";
      key = line.substr(0, sp);
      value = line.substr(sp + 1);
      // Values are never empty, so that "no value" can only mean a missing key.
      if (value.empty()) co_return "ERR empty_value (" + cmd + " needs a non-empty value; DEL removes a key)";
    } else {
      key = line;
      if (key.find(' ') != std::string_view::npos) co_return "ERR usage: " + cmd + " key";
    }
    if (key.empty()) co_return "ERR usage: " + cmd + " needs a non-empty key";

    if (cmd == "LOCALGET") co_return value_reply(sm_.find(std::string(key)));
    if (shutting_down_) co_return "ERR stopped";
    if (cmd == "GET") {
      auto r = co_await node_.async_read_barrier();
      if (!r) co_return error_reply(r.error());
      co_return value_reply(sm_.find(std::string(key)));
    }

    raft::buffer command = cmd == "PUT"      ? kv::put(key, value)
                           : cmd == "APPEND" ? kv::append(key, value)
                                             : kv::del(key);
    auto r = co_await node_.async_propose(command.bytes());
    if (!r) co_return error_reply(r.error());
    // The state machine answers the value the command saw, "" when the key had none (no value
    // is empty): PUT of a new key is plain OK, DEL of a missing key NOTFOUND.
    if (r->empty()) co_return cmd == "DEL" ? "NOTFOUND" : "OK";
    co_return "OK " + *r;
  }

  /// `OK <value>` for a key that has a value, `NOTFOUND` for a missing one.
  static std::string value_reply(const std::optional<std::string>& value) {
    return value ? "OK " + *value : "NOTFOUND";
  }

  static std::string error_reply(const raft::error& e) {
    switch (e.code) {
      case raft::errc::not_leader: return "ERR not_leader " + std::to_string(e.leader_hint.value);
      case raft::errc::leadership_lost: return "ERR leadership_lost (outcome unknown)";
      case raft::errc::stopped: return "ERR stopped (outcome unknown)";
      case raft::errc::committed_result_unknown: return "ERR committed (result unknown)";
      case raft::errc::busy: return "ERR busy";
      case raft::errc::transferring: return "ERR busy (leadership transfer)";
      case raft::errc::timeout: return "ERR timeout (not confirmed in time)";
      default: return "ERR " + e.message();
    }
  }

  /// ADD id host:port | PROMOTE id | REMOVE id | TRANSFER id
  asio::awaitable<std::string> admin(const std::string& cmd, std::string_view args) {
    if (shutting_down_) co_return "ERR stopped";
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
      if (!r) co_return error_reply(r.error());
      co_return "OK " + std::to_string(r->value);
    }
    raft::result<raft::index_t> r = raft::error{raft::errc::invalid_argument};
    if (cmd == "ADD") {
      const auto colon = rest.rfind(':');
      if (colon == std::string::npos || colon == 0 || rest.find(' ') != std::string::npos)
        co_return "ERR usage: ADD id host:port";
      // The address goes into the replicated map first, so every member learns it.
      auto a = co_await node_.async_propose(kv::put("__peer/" + id_text, rest).bytes());
      if (!a) co_return error_reply(a.error());
      learn_peer_addresses();
      r = co_await node_.async_add_learner(id);
    } else if (cmd == "PROMOTE") {
      r = co_await node_.async_promote(id);
    } else {
      r = co_await node_.async_remove(id);
    }
    if (!r) co_return error_reply(r.error());
    co_return "OK " + std::to_string(r->value);
  }

  std::string status_line() const {
    const raft::node_status s = node_.status();
    std::ostringstream os;
    os << "OK id=" << s.id << " role=" << raft::to_string(s.role) << " term=" << s.term
       << " leader=" << s.leader << " commit=" << s.commit_index << " applied=" << s.applied_index
       << " last=" << s.last_log_index << " durable=" << s.durable_index
       << " snapshot=" << s.snapshot_index << " voters=" << s.config.voters.size()
       << " learners=" << s.config.learners.size()
       << " keys=" << sm_.data().size() << " hash=" << std::hex << sm_.hash();
    return os.str();
  }

  asio::io_context& io_;
  const config& cfg_;
  std::string prefix_;
  kv sm_;
  raft::file_storage storage_;
  Transport transport_;
  node_type node_;  // after what it refers to: destroyed first
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer watchdog_;
  std::set<tcp::socket*> sessions_;  // open client connections, closed at shutdown
  std::set<std::string> known_peers_;  // "__peer/<id>" keys already given to the transport
  bool shutting_down_ = false;
  int exit_code_ = 0;
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
  o.cert_file = cfg.tls_cert;
  o.key_file = cfg.tls_key;
  o.ca_file = cfg.tls_ca;
  raft::mutual_tls tls(o);
  X509* own = SSL_CTX_get0_certificate(tls.context()->native_handle());
  const std::string name = tls.name_of(cfg.id);
  if (!own || X509_check_host(own, name.data(), name.size(), X509_CHECK_FLAG_NO_WILDCARDS, nullptr) != 1)
    throw std::runtime_error("--tls-cert " + cfg.tls_cert + " names " +
                             (own ? raft::tls_certificate_names(own) : std::string("nothing")) + ", not " + name +
                             ": the other servers would refuse it");
  return tls;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const config cfg = parse_args(argc, argv);
  try {
#if RAFT_KV_TLS
    if (cfg.tls()) return run<raft::tls_transport>(cfg, make_tls(cfg));
#endif
    return run<raft::tcp_transport>(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[kv_server %llu] error: %s\n", static_cast<unsigned long long>(cfg.id.value),
                 e.what());
    return 1;
  }
}
