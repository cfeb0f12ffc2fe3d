// examples/kv/kv_server.cpp - one member of a replicated key-value store, one process per node.
//
//   kv_server --id N --data DIR --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
//             --client-port P [--client-host 127.0.0.1] [--cluster-id X] [--no-fsync]
//
// The process runs a raft::node<kv_state_machine, file_storage, tcp_transport> on one
// asio::io_context on one thread:
//   - Raft traffic goes over raft::tcp_transport, listening on this node's address in --peers;
//   - the log, term and vote live in raft::file_storage in --data (fsync on unless --no-fsync);
//   - the key-value map (raft::testing::kv_state_machine) lives in memory and is rebuilt at start
//     by re-applying the log (there are no snapshots yet);
//   - a brand-new cluster (empty --data) bootstraps with every id listed in --peers as a voter.
//
// Clients talk to --client-host:--client-port (default host 127.0.0.1), one command per line,
// one reply line per command (see README.md in this directory):
//   PUT key value      -> OK <previous value>
//   GET key            -> OK <value>           (goes through the log: see below)
//   DEL key            -> OK <previous value>
//   APPEND key value   -> OK <new value>
//   LOCALGET key       -> OK <value>           this node's state machine, right now (may be stale)
//   STATUS             -> OK id=.. role=.. term=.. leader=.. commit=.. applied=.. last=.. durable=..
// Errors: `ERR not_leader <leader id, 0 if unknown>`, `ERR leadership_lost` / `ERR stopped`
// (outcome unknown: the command may still be applied), `ERR busy`, `ERR <reason>`.
// GET is proposed as a log entry like the writes, so it is linearizable but costs a replicated
// write; read-index / lease reads do not exist in the library yet.
//
// SIGINT or SIGTERM: stop accepting clients, `co_await node.stop()`, exit 0.
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

#include "address_list.hpp"

namespace {

using namespace std::chrono_literals;
using kv = raft::testing::kv_state_machine;
using node_type = raft::node<kv, raft::file_storage, raft::tcp_transport>;
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
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "kv_server: %s\n"
               "usage: kv_server --id N --data DIR --peers 1=HOST:PORT,2=HOST:PORT,...\n"
               "                 --client-port P [--client-host H] [--cluster-id X] [--no-fsync]\n",
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
    } else if (arg == "--no-fsync") {
      c.fsync = false;
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

// ---- the server ---------------------------------------------------------------------------------

class server {
 public:
  server(asio::io_context& io, const config& cfg)
      : io_(io),
        cfg_(cfg),
        prefix_("[kv_server " + std::to_string(cfg.id.value) + "] "),
        storage_(cfg.data, make_storage_options(cfg)),
        transport_(io.get_executor(), cfg.id, resolve(io, cfg.peers.at(cfg.id).host, cfg.peers.at(cfg.id).port),
                   other_peers(cfg), make_transport_options(cfg)),
        node_(io.get_executor(), make_node_options(cfg), sm_, storage_, transport_),
        acceptor_(io, resolve(io, cfg.client_host, cfg.client_port)),
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
    log("listening for clients on ", acceptor_.local_endpoint(), ", data in ", cfg_.data.string(),
        cfg_.fsync ? " (fsync on)" : " (fsync OFF)");
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
    raft::configuration founders;
    for (const auto& [id, address] : c.peers) founders.voters.push_back(id);
    o.bootstrap = founders;  // used only when the storage is empty (a brand-new cluster)
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
    co_await node_.stop();
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

  /// One client connection: reads a line, answers a line, until the client closes.
  asio::awaitable<void> session(tcp::socket socket) {
    sessions_.insert(&socket);
    struct unregister {
      std::set<tcp::socket*>& set;
      tcp::socket* s;
      ~unregister() { set.erase(s); }
    } guard{sessions_, &socket};

    std::string in;
    for (;;) {
      std::error_code ec;
      const std::size_t n = co_await asio::async_read_until(
          socket, asio::dynamic_buffer(in, max_line_bytes), '\n',
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
      if (!socket.is_open()) co_return;
      co_await asio::async_write(socket, asio::buffer(reply), asio::redirect_error(asio::use_awaitable, ec));
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

    const bool has_value = cmd == "PUT" || cmd == "APPEND";
    if (!has_value && cmd != "GET" && cmd != "DEL" && cmd != "LOCALGET")
      co_return "ERR unknown command '" + cmd + "' (PUT, GET, DEL, APPEND, LOCALGET, STATUS)";
    std::string_view key;
    std::string_view value;
    if (has_value) {
      const auto sp = line.find(' ');
      if (sp == std::string_view::npos) co_return "ERR usage: " + cmd + " key value";
      key = line.substr(0, sp);
      value = line.substr(sp + 1);
    } else {
      key = line;
      if (key.find(' ') != std::string_view::npos) co_return "ERR usage: " + cmd + " key";
    }
    if (key.empty()) co_return "ERR usage: " + cmd + " needs a non-empty key";

    if (cmd == "LOCALGET") co_return "OK " + sm_.find(std::string(key)).value_or("");
    if (shutting_down_) co_return "ERR stopped";

    raft::buffer command = cmd == "PUT"      ? kv::put(key, value)
                           : cmd == "APPEND" ? kv::append(key, value)
                           : cmd == "DEL"    ? kv::del(key)
                                             : kv::get(key);
    auto r = co_await node_.propose(command.bytes());
    if (r) co_return "OK " + *r;
    const raft::error& e = r.error();
    switch (e.code) {
      case raft::errc::not_leader: co_return "ERR not_leader " + std::to_string(e.leader_hint.value);
      case raft::errc::leadership_lost: co_return "ERR leadership_lost (outcome unknown)";
      case raft::errc::stopped: co_return "ERR stopped (outcome unknown)";
      case raft::errc::busy: co_return "ERR busy";
    }
    co_return "ERR " + e.message();
  }

  std::string status_line() const {
    const raft::node_status s = node_.status();
    std::ostringstream os;
    os << "OK id=" << s.id << " role=" << raft::to_string(s.role) << " term=" << s.term
       << " leader=" << s.leader << " commit=" << s.commit_index << " applied=" << s.applied_index
       << " last=" << s.last_log_index << " durable=" << s.durable_index
       << " keys=" << sm_.data().size() << " hash=" << std::hex << sm_.hash();
    return os.str();
  }

  asio::io_context& io_;
  const config& cfg_;
  std::string prefix_;
  kv sm_;
  raft::file_storage storage_;
  raft::tcp_transport transport_;
  node_type node_;  // after what it refers to: destroyed first
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer watchdog_;
  std::set<tcp::socket*> sessions_;  // open client connections, closed at shutdown
  bool shutting_down_ = false;
  int exit_code_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const config cfg = parse_args(argc, argv);
  try {
    asio::io_context io;
    server srv(io, cfg);
    srv.start();
    io.run();  // returns once the node has stopped and every session has ended
    return srv.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[kv_server %llu] error: %s\n", static_cast<unsigned long long>(cfg.id.value),
                 e.what());
    return 1;
  }
}
