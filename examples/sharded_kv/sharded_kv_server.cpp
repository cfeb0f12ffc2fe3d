// examples/sharded_kv/sharded_kv_server.cpp - one process of a sharded key-value store: a replica
// of every one of N Raft groups (Multi-Raft), each group holding the keys that hash to it.
//
//   sharded_kv_server --id N --data DIR --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
//                     --client-port P [--groups N] [--client-host 127.0.0.1] [--cluster-id X]
//                     [--no-fsync] [--snapshot-every N]
//
// What the process holds (all on one asio::io_context run by one thread):
//   - one raft::tcp_transport, listening on this process's address in --peers: one connection per
//     pair of processes carries the traffic of every group;
//   - one raft::group_router over it, which hands each group its own messages;
//   - per group g in 1..N (--groups, default 16): a raft::node with a key-value state machine of
//     its own (raft::testing::kv_state_machine) and a raft::file_storage in DIR/group-<g>/.
//     Every group has the same voters, the ids in --peers, and each process's replica of every
//     group has the process's id as its node id.
//
// Keys map to groups by a stable hash: group = FNV-1a-64(key) mod N, plus 1. N is written to
// DIR/groups at the first start; a later start with another --groups is refused (the keys would
// map to other groups than the ones holding them).
//
// Leaders spread over the processes: group g's preferred process is the ((g-1) mod P)-th of the
// P ids in --peers, in increasing order. Once a second, each process hands every group it leads
// whose preferred process is another one to that process (node::async_transfer_leadership), if
// that process is a voter of the group and the transport has been connected to it at this check
// and the previous one. A dead process is never chosen, so its groups stay with whoever the
// survivors elected until it is back.
//
// Clients: the text protocol of examples/kv (one command per line, one reply line), each key
// served by its group's replica on this process:
//   PUT key value      -> OK <previous value> | OK (the key was new)
//   GET key            -> OK <value> | NOTFOUND        linearizable (read barrier), on any process
//   DEL key            -> OK <deleted value> | NOTFOUND
//   APPEND key value   -> OK <new value>
//   LOCALGET key       -> OK <value> | NOTFOUND        this replica, right now (may be stale)
//   STATUS             -> OK id=.. groups=N leading=.. leaders=l1,l2,..,lN   (0: no leader known)
//   STATUS g           -> OK group=g id=.. role=.. term=.. leader=.. commit=.. applied=.. keys=.. hash=..
//   GROUP key          -> OK <g>                        the group that holds the key
// A write for a key whose group another process leads is answered `ERR not_leader <id>` (the
// process that leads it, 0 if unknown), which examples/kv/kv_client follows; the other errors
// are those of kv_server. Membership changes (ADD, PROMOTE, REMOVE, TRANSFER) are not offered:
// the members are the ids in --peers.
//
// SIGINT or SIGTERM: stop accepting clients, stop every group's node, then the router and the
// transport, and exit 0. A taken port ends the process at start with status 1 and a message
// naming that port.
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

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

#include <raft/multi/group_router.hpp>
#include <raft/raft.hpp>
#include <raft/storage/file.hpp>
#include <raft/testing/kv_state_machine.hpp>
#include <raft/transport/tcp.hpp>

#include "../kv/address_list.hpp"

namespace {

using namespace std::chrono_literals;
using kv = raft::testing::kv_state_machine;
using asio::ip::tcp;
using group_net = raft::group_transport<raft::tcp_transport>;
using group_node = raft::node<kv, raft::file_storage, group_net>;

constexpr std::size_t max_line_bytes = std::size_t{1} << 20;
constexpr auto balance_interval = 1s;

// ---- command line -------------------------------------------------------------------------------

struct config {
  raft::node_id id;
  std::filesystem::path data;
  std::map<raft::node_id, raft::tcp_address> peers;  // every process, this one included
  std::uint64_t groups = 16;
  std::string client_host = "127.0.0.1";
  std::uint16_t client_port = 0;
  std::uint64_t cluster_id = 0x534B;  // "SK"
  bool fsync = true;
  std::uint64_t snapshot_every = 10000;  // applied entries of a group between its snapshots (0: none)
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "sharded_kv_server: %s\n"
               "usage: sharded_kv_server --id N --data DIR --peers 1=HOST:PORT,2=HOST:PORT,...\n"
               "                         --client-port P [--groups N] [--client-host H] [--cluster-id X]\n"
               "                         [--no-fsync] [--snapshot-every N]\n",
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
    } else if (arg == "--groups") {
      c.groups = parse_number(value(), "--groups", 100000);
    } else if (arg == "--client-port") {
      c.client_port = static_cast<std::uint16_t>(parse_number(value(), "--client-port", 65535));
      have_port = true;
    } else if (arg == "--client-host") {
      c.client_host = std::string(value());
    } else if (arg == "--cluster-id") {
      c.cluster_id = parse_number(value(), "--cluster-id", UINT64_MAX);
    } else if (arg == "--snapshot-every") {
      c.snapshot_every = parse_number(value(), "--snapshot-every", UINT64_MAX);
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
  if (!c.peers.contains(c.id)) usage("--peers must list this process's own id and address");
  if (!have_port) usage("--client-port is required");
  if (c.groups == 0) usage("--groups must be at least 1");
  return c;
}

// ---- keys, groups and processes -----------------------------------------------------------------

/// FNV-1a, 64 bits: stable across processes, runs and platforms (std::hash is none of these).
std::uint64_t fnv1a_64(std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : text) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

/// The group that holds `key`: 1..groups.
raft::group_id group_of(std::string_view key, std::uint64_t groups) {
  return raft::group_id{fnv1a_64(key) % groups + 1};
}

/// The process that should lead group `g`: the ((g-1) mod P)-th of the P processes, by id.
raft::node_id preferred_leader(raft::group_id g, const std::map<raft::node_id, raft::tcp_address>& processes) {
  auto it = processes.begin();
  std::advance(it, static_cast<std::ptrdiff_t>((g.value - 1) % processes.size()));
  return it->first;
}

/// Records the number of groups in DIR/groups at the first start, and refuses another one later:
/// keys hash over the groups, so a new count would look for keys in groups that do not hold them.
void check_group_count(const std::filesystem::path& data, std::uint64_t groups) {
  std::filesystem::create_directories(data);
  const auto file = data / "groups";
  if (std::ifstream in{file}) {
    std::uint64_t recorded = 0;
    if (!(in >> recorded)) throw std::runtime_error(file.string() + " does not hold a group count");
    if (recorded != groups)
      throw std::runtime_error(data.string() + " holds " + std::to_string(recorded) + " groups, not --groups " +
                               std::to_string(groups) + " (the count cannot change: keys would map to other groups)");
    return;
  }
  std::ofstream out{file};
  out << groups << '\n';
  if (!out.flush()) throw std::runtime_error("cannot write " + file.string());
}

tcp::endpoint resolve(asio::io_context& io, const std::string& host, std::uint16_t port) {
  std::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (!ec) return {address, port};
  tcp::resolver resolver(io);
  return *resolver.resolve(host, std::to_string(port)).begin();  // throws if it cannot
}

/// Returns `open()`, which constructs what listens on HOST:PORT; a failure names the port and the
/// option that gave it (Asio's "Address already in use" does not say which of the two ports).
template <class Open>
auto listen_on(const char* port_name, const char* option, const raft::tcp_address& at, Open open)
    -> decltype(open()) {
  try {
    return open();
  } catch (const std::system_error& e) {
    const std::string where = std::string("the ") + port_name + " " + at.host + ":" + std::to_string(at.port) +
                              " (" + option + ")";
    if (e.code() == asio::error::address_in_use) throw std::runtime_error(where + " is already in use");
    throw std::runtime_error("cannot listen on " + where + ": " + e.code().message());
  }
}

std::string error_reply(const raft::error& e) {
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

std::string value_reply(const std::optional<std::string>& value) { return value ? "OK " + *value : "NOTFOUND"; }

// ---- the server ---------------------------------------------------------------------------------

class server {
 public:
  server(asio::io_context& io, const config& cfg)
      : io_(io),
        cfg_(cfg),
        prefix_("[sharded_kv_server " + std::to_string(cfg.id.value) + "] "),
        transport_(listen_on("Raft port", "this process's address in --peers", cfg.peers.at(cfg.id), [&] {
          const raft::tcp_address& self = cfg.peers.at(cfg.id);
          return raft::tcp_transport(io.get_executor(), cfg.id, resolve(io, self.host, self.port), other_peers(),
                                     transport_options());
        })),
        router_(transport_, io.get_executor()),
        acceptor_(listen_on("client port", "--client-port", {cfg.client_host, cfg.client_port},
                            [&] { return tcp::acceptor(io, resolve(io, cfg.client_host, cfg.client_port)); })),
        signals_(io, SIGINT, SIGTERM),
        watchdog_(io),
        balance_timer_(io) {
    check_group_count(cfg.data, cfg.groups);
    for (std::uint64_t g = 1; g <= cfg.groups; ++g)
      replicas_.push_back(std::make_unique<replica>(*this, raft::group_id{g}));
    router_.on_unknown_group([this, warned = std::set<raft::group_id>()](const raft::message& m) mutable {
      if (warned.insert(m.group).second)
        log("dropping messages for group ", m.group, " from process ", m.from,
            ": this process runs groups 1..", cfg_.groups, " (is --groups the same everywhere?)");
    });
  }

  /// Starts the router, every group's node, the client listener and the background loops.
  void start() {
    asio::co_spawn(io_, router_.run(), asio::detached);
    for (auto& r : replicas_) r->node.start();  // loads the group's log; bootstraps it if empty
    log(cfg_.groups, " groups started, data in ", cfg_.data.string(), cfg_.fsync ? " (fsync on)" : " (fsync OFF)",
        "; listening for clients on ", acceptor_.local_endpoint());
    asio::co_spawn(io_, accept_loop(), asio::detached);
    asio::co_spawn(io_, failure_watch(), asio::detached);
    asio::co_spawn(io_, balance_leaders(), asio::detached);
    signals_.async_wait([this](std::error_code ec, int signo) {
      if (ec) return;
      log("signal ", signo, ": shutting down");
      begin_shutdown(0);
    });
  }

  [[nodiscard]] int exit_code() const { return exit_code_; }

 private:
  /// This process's replica of one group. Members in dependency order: the node, declared last,
  /// is destroyed first.
  struct replica {
    replica(server& s, raft::group_id g)
        : group(g),
          storage(s.cfg_.data / ("group-" + std::to_string(g.value)), s.storage_options()),
          transport(s.router_, g),
          node(s.io_.get_executor(), s.node_options(g), sm, storage, transport) {}
    raft::group_id group;
    kv sm;
    raft::file_storage storage;
    group_net transport;
    group_node node;
  };

  // -- construction helpers

  raft::logger make_logger(const std::string& prefix) const {
    raft::logger l;
    l.min_level = raft::log_level::info;
    l.sink = [prefix](raft::log_level level, std::string_view text) {
      std::fprintf(stderr, "%s%s: %.*s\n", prefix.c_str(), raft::to_string(level), static_cast<int>(text.size()),
                   text.data());
    };
    return l;
  }
  raft::tcp_transport_options transport_options() const {
    raft::tcp_transport_options o;
    o.cluster_id = cfg_.cluster_id;
    o.logger = make_logger(prefix_);
    return o;
  }
  raft::file_storage_options storage_options() const {
    raft::file_storage_options o;
    o.fsync = cfg_.fsync;
    return o;
  }
  raft::options node_options(raft::group_id g) const {
    raft::options o;
    o.id = cfg_.id;
    raft::configuration founders;
    for (const auto& [id, address] : cfg_.peers) founders.voters.push_back(id);
    o.bootstrap = founders;  // used only when the group's storage is empty
    o.snapshot_entries = cfg_.snapshot_every;
    // The default seed derives from the node id alone: every group of this process would draw
    // the same election timeouts and campaign at the same moments.
    o.seed = cfg_.id.value * 1'000'003 + g.value;
    o.logger = make_logger(prefix_ + "group " + std::to_string(g.value) + " ");
    return o;
  }
  std::map<raft::node_id, raft::tcp_address> other_peers() const {
    auto peers = cfg_.peers;
    peers.erase(cfg_.id);
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

  replica& replica_for(std::string_view key) { return *replicas_[group_of(key, cfg_.groups).value - 1]; }

  // -- shutdown

  void begin_shutdown(int code) {
    if (shutting_down_) return;
    shutting_down_ = true;
    exit_code_ = code;
    std::error_code ignored;
    acceptor_.close(ignored);
    signals_.cancel(ignored);
    watchdog_.cancel();
    balance_timer_.cancel();
    asio::co_spawn(io_, shutdown(), asio::detached);
  }

  /// Every node first (their pending requests complete with errc::stopped), then the client
  /// connections, then the router and with it the shared transport.
  asio::awaitable<void> shutdown() {
    for (auto& r : replicas_) co_await r->node.async_stop();
    std::error_code ignored;
    for (tcp::socket* s : sessions_) s->close(ignored);
    router_.close();
    log("every group stopped; exiting with status ", exit_code_);
  }

  /// A group whose storage failed stops itself (fail-stop); the process then exits 1 rather
  /// than serve that group's keys with "ERR stopped" forever.
  asio::awaitable<void> failure_watch() {
    std::error_code ec;
    while (!shutting_down_) {
      watchdog_.expires_after(200ms);
      co_await watchdog_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      for (auto& r : replicas_) {
        if (shutting_down_ || !r->node.failure()) continue;
        log("group ", r->group, " failed; exiting");
        begin_shutdown(1);
      }
    }
  }

  // -- leaders spread over the processes

  /// Once a second: hands each group this process leads to its preferred process, when that
  /// one is a voter of the group and was connected at this check and the previous one (a
  /// process that just came back, or whose connection flaps, is left alone for a round).
  /// One transfer at a time: a process gives its groups away one by one.
  asio::awaitable<void> balance_leaders() {
    std::set<raft::node_id> connected_before;
    std::error_code ec;
    while (!shutting_down_) {
      balance_timer_.expires_after(balance_interval);
      co_await balance_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      std::set<raft::node_id> connected_now;
      for (const auto& [id, address] : cfg_.peers)
        if (id != cfg_.id && transport_.connected(id)) connected_now.insert(id);
      for (auto& r : replicas_) {
        if (shutting_down_) co_return;
        const raft::node_id target = preferred_leader(r->group, cfg_.peers);
        if (!should_hand_over(*r, target, connected_before, connected_now)) continue;
        const auto moved = co_await r->node.async_transfer_leadership(target);
        if (moved)
          log("group ", r->group, ": leadership handed to its preferred process ", target);
        else
          log("group ", r->group, ": handing leadership to process ", target, " failed: ", moved.error().message());
      }
      connected_before = std::move(connected_now);
    }
  }

  bool should_hand_over(replica& r, raft::node_id target, const std::set<raft::node_id>& connected_before,
                        const std::set<raft::node_id>& connected_now) const {
    return r.node.role() == raft::role::leader && target != cfg_.id && connected_before.contains(target) &&
           connected_now.contains(target) && r.node.status().config.is_voter(target);
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
    std::string in;
    for (;;) {
      std::error_code ec;
      const std::size_t n = co_await asio::async_read_until(socket, asio::dynamic_buffer(in, max_line_bytes), '\n',
                                                            asio::redirect_error(asio::use_awaitable, ec));
      if (ec && ec != asio::error::not_found) break;  // closed by the client, or by our shutdown
      std::string reply = "ERR line too long";
      if (!ec) {
        std::string line = in.substr(0, n - 1);
        in.erase(0, n);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        reply = co_await handle(line);
      }
      reply += '\n';
      if (!socket.is_open()) break;
      std::error_code write_ec;
      co_await asio::async_write(socket, asio::buffer(reply), asio::redirect_error(asio::use_awaitable, write_ec));
      if (write_ec || ec) break;  // a line too long ends the connection
    }
    sessions_.erase(&socket);
  }

  /// Executes one command line; returns the reply without its newline.
  asio::awaitable<std::string> handle(std::string_view line) {
    // COMMAND [key [value...]]: the value is everything after the key and one space.
    const auto sp = line.find(' ');
    std::string cmd(line.substr(0, sp));
    const std::string_view args = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    for (char& ch : cmd) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));

    if (cmd.empty()) co_return "ERR empty command";
    if (cmd == "STATUS") co_return args.empty() ? status_line() : group_status_line(args);
    if (cmd == "ADD" || cmd == "PROMOTE" || cmd == "REMOVE" || cmd == "TRANSFER")
      co_return "ERR unsupported (the members of every group are the processes in --peers)";
    const bool has_value = cmd == "PUT" || cmd == "APPEND";
    if (!has_value && cmd != "GET" && cmd != "DEL" && cmd != "LOCALGET" && cmd != "GROUP")
      co_return "ERR unknown command '" + cmd + "' (PUT, GET, DEL, APPEND, LOCALGET, GROUP, STATUS)";

    std::string_view key = args;
    std::string_view value;
    if (has_value) {
      const auto key_end = args.find(' ');
      if (key_end == std::string_view::npos) co_return "ERR usage: " + cmd + " key value";
      key = args.substr(0, key_end);
      value = args.substr(key_end + 1);
      // Values are never empty, so that "no value" can only mean a missing key.
      if (value.empty()) co_return "ERR empty_value (" + cmd + " needs a non-empty value; DEL removes a key)";
    } else if (key.find(' ') != std::string_view::npos) {
      co_return "ERR usage: " + cmd + " key";
    }
    if (key.empty()) co_return "ERR usage: " + cmd + " needs a non-empty key";

    if (cmd == "GROUP") co_return "OK " + std::to_string(group_of(key, cfg_.groups).value);
    replica& r = replica_for(key);
    if (cmd == "LOCALGET") co_return value_reply(r.sm.find(std::string(key)));
    if (shutting_down_) co_return "ERR stopped";
    if (cmd == "GET") co_return co_await read(r, std::string(key));
    co_return co_await write(r, cmd, key, value);
  }

  /// A linearizable read on this process's replica of the key's group (ReadIndex: on a
  /// follower, the group's leader is asked for the index).
  static asio::awaitable<std::string> read(replica& r, std::string key) {
    auto barrier = co_await r.node.async_read_barrier();
    if (!barrier) co_return error_reply(barrier.error());
    co_return value_reply(r.sm.find(key));
  }

  /// PUT, APPEND or DEL through the group's node: only its leader accepts it; a follower's
  /// not_leader names the leader, and the client goes there.
  static asio::awaitable<std::string> write(replica& r, const std::string& cmd, std::string_view key,
                                            std::string_view value) {
    const raft::buffer command = cmd == "PUT"      ? kv::put(key, value)
                                 : cmd == "APPEND" ? kv::append(key, value)
                                                   : kv::del(key);
    auto applied = co_await r.node.async_propose(command.bytes());
    if (!applied) co_return error_reply(applied.error());
    // The state machine answers the value the command saw, "" when the key had none.
    if (applied->empty()) co_return cmd == "DEL" ? "NOTFOUND" : "OK";
    co_return "OK " + *applied;
  }

  std::string status_line() const {
    std::ostringstream os;
    std::size_t leading = 0;
    std::string leaders;
    for (const auto& r : replicas_) {
      leading += r->node.role() == raft::role::leader;
      leaders += (leaders.empty() ? "" : ",") + std::to_string(r->node.leader().value);
    }
    os << "OK id=" << cfg_.id << " groups=" << cfg_.groups << " leading=" << leading << " leaders=" << leaders;
    return os.str();
  }

  std::string group_status_line(std::string_view group_text) const {
    const std::string text(group_text);
    char* end = nullptr;
    const unsigned long long g = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || g == 0 || g > cfg_.groups)
      return "ERR usage: STATUS [group, 1.." + std::to_string(cfg_.groups) + "]";
    const replica& r = *replicas_[g - 1];
    const raft::node_status s = r.node.status();
    std::ostringstream os;
    os << "OK group=" << g << " id=" << s.id << " role=" << raft::to_string(s.role) << " term=" << s.term
       << " leader=" << s.leader << " commit=" << s.commit_index << " applied=" << s.applied_index
       << " last=" << s.last_log_index << " durable=" << s.durable_index << " snapshot=" << s.snapshot_index
       << " keys=" << r.sm.data().size() << " hash=" << std::hex << r.sm.hash();
    return os.str();
  }

  asio::io_context& io_;
  const config& cfg_;
  std::string prefix_;
  raft::tcp_transport transport_;           // the process's one transport
  raft::group_router<raft::tcp_transport> router_;
  std::vector<std::unique_ptr<replica>> replicas_;  // group g at g-1; destroyed before the router
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer watchdog_;
  asio::steady_timer balance_timer_;
  std::set<tcp::socket*> sessions_;  // open client connections, closed at shutdown
  bool shutting_down_ = false;
  int exit_code_ = 0;
};

int run(const config& cfg) {
  asio::io_context io;
  server srv(io, cfg);
  srv.start();
  io.run();  // returns once every node, the router, the transport and every session have ended
  return srv.exit_code();
}

}  // namespace

int main(int argc, char** argv) {
  const config cfg = parse_args(argc, argv);
  try {
    return run(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "[sharded_kv_server %llu] error: %s\n", static_cast<unsigned long long>(cfg.id.value),
                 e.what());
    return 1;
  }
}
