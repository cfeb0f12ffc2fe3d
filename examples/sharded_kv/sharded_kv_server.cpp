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
//   - one raft::shared_log in DIR/log/: the logs, terms, votes and snapshots of every group, in
//     one append stream made durable by one fdatasync per round for all groups (not one per
//     group; --no-fsync turns the syncs off);
//   - per group g in 1..N (--groups, default 16): a raft::node with a key-value state machine of
//     its own (raft::testing::kv_state_machine) and its storage, the shared log's handle of
//     group g. Every group has the same voters, the ids in --peers, and each process's replica
//     of every group has the process's id as its node id.
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
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <raft/multi/group_router.hpp>
#include <raft/raft.hpp>
#include <raft/storage/shared_log.hpp>
#include <raft/testing/kv_state_machine.hpp>
#include <raft/transport/tcp.hpp>

#include "../kv/client_port.hpp"
#include "../kv/client_protocol.hpp"
#include "../kv/command_line.hpp"
#include "../kv/network.hpp"
#include "../kv/server_lifetime.hpp"
#include "../kv/server_options.hpp"
#include "../kv/server_log.hpp"

namespace {

using namespace std::chrono_literals;
using kv_map = raft::testing::kv_state_machine;
using asio::ip::tcp;
using group_net = raft::group_transport<raft::tcp_transport>;
using group_node = raft::node<kv_map, raft::shared_log_group, group_net>;

constexpr auto balance_interval = 1s;

// ---- command line -------------------------------------------------------------------------------

/// sharded_kv_server's options: those of kv_server, and the number of groups.
struct config : kv::server_options {
  config() : server_options(0x534B) {}  // cluster id "SK"
  std::uint64_t groups = 16;
};

config parse_args(int argc, char** argv) {
  config c;
  kv::command_line args(
      argc, argv, "sharded_kv_server",
      config::usage("sharded_kv_server", {"--client-port P [--groups N] [--client-host H] [--cluster-id X]",
                                          "[--no-fsync] [--snapshot-every N]"}));
  c.read(args, "process", [&c](kv::command_line& a) {
    if (a.current() != "--groups") return false;
    c.groups = a.number_value(100000);
    return true;
  });
  if (c.groups == 0) args.fail("--groups must be at least 1");
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

/// The directory of the process's shared log, DIR/log, once DIR/groups agrees with --groups.
std::filesystem::path log_directory(const config& cfg) {
  check_group_count(cfg.data, cfg.groups);
  return cfg.data / "log";
}

raft::shared_log_options log_options(const config& cfg) {
  raft::shared_log_options o;
  o.fsync = cfg.fsync;
  return o;
}

// ---- the server ---------------------------------------------------------------------------------

class server {
 public:
  server(asio::io_context& io, const config& cfg)
      : io_(io),
        cfg_(cfg),
        log_("sharded_kv_server", cfg.id),
        transport_(kv::open_raft_transport<raft::tcp_transport>(
            io, cfg.id, cfg.peers, "this process's address in --peers", cfg.cluster_id, log_.raft_logger())),
        router_(transport_, io.get_executor()),
        storage_(log_directory(cfg), log_options(cfg)),
        clients_(io, cfg.client, log_),
        lifetime_(io, log_, [this] { shut_down(); }) {
    for (std::uint64_t g = 1; g <= cfg.groups; ++g)
      replicas_.push_back(std::make_unique<replica>(*this, raft::group_id{g}));
    router_.on_unknown_group([this, warned = std::set<raft::group_id>()](const raft::message& m) mutable {
      if (warned.insert(m.group).second)
        log_.info("dropping messages for group ", m.group, " from process ", m.from,
                  ": this process runs groups 1..", cfg_.groups, " (is --groups the same everywhere?)");
    });
  }

  /// Starts the router, every group's node, the client listener and the background loops.
  void start() {
    asio::co_spawn(io_, router_.run(), asio::detached);
    for (auto& r : replicas_) r->node.start();  // loads the group's log; bootstraps it if empty
    log_.info(cfg_.groups, " groups started, data in ", cfg_.data.string(),
              cfg_.fsync ? " (fsync on)" : " (fsync OFF)", "; listening for clients on ", clients_.local_endpoint());
    clients_.start([this](tcp::socket socket) { return session(std::move(socket)); });
    lifetime_.every(200ms, [this] { return check_failures(); });
    lifetime_.every(balance_interval, [this] { return balance_leaders(); });
    lifetime_.watch_signals();
  }

  [[nodiscard]] int exit_code() const { return lifetime_.exit_code(); }

 private:
  /// This process's replica of one group. Members in dependency order: the node, declared last,
  /// is destroyed first.
  struct replica {
    replica(server& s, raft::group_id g)
        : group(g),
          storage(s.storage_.open_group(g)),
          transport(s.router_, g),
          node(s.io_.get_executor(), s.node_options(g), sm, storage, transport) {}
    raft::group_id group;
    kv_map sm;
    raft::shared_log_group storage;  // group g's handle on the process's shared log
    group_net transport;
    group_node node;
  };

  raft::options node_options(raft::group_id g) const {
    raft::options o;
    o.id = cfg_.id;
    raft::configuration founders;
    for (const auto& [id, address] : cfg_.peers) founders.voters.push_back(id);
    o.bootstrap = founders;  // used only when the group's storage is empty
    o.snapshot_entries = cfg_.snapshot_every;
    o.align_heartbeats = true;  // every group ticks in the same turn: a tick's heartbeats share a write
    // The default seed derives from the node id alone: every group of this process would draw
    // the same election timeouts and campaign at the same moments.
    o.seed = cfg_.id.value * 1'000'003 + g.value;
    o.logger = log_.raft_logger("group " + std::to_string(g.value) + " ");
    return o;
  }

  replica& replica_for(std::string_view key) { return *replicas_[group_of(key, cfg_.groups).value - 1]; }

  // -- shutdown

  void shut_down() {
    clients_.stop_accepting();
    asio::co_spawn(io_, stop_groups(), asio::detached);
  }

  /// Every node first (their pending requests complete with errc::stopped), then the client
  /// connections, then the router and with it the shared transport.
  asio::awaitable<void> stop_groups() {
    for (auto& r : replicas_) co_await r->node.async_stop();
    clients_.close_connections();
    router_.close();
    log_.info("every group stopped; exiting with status ", lifetime_.exit_code());
  }

  /// Every 200 ms. A group whose storage failed stops itself (fail-stop); the process then
  /// exits 1 rather than serve that group's keys with "ERR stopped" forever.
  asio::awaitable<void> check_failures() {
    for (auto& r : replicas_) {
      if (lifetime_.shutting_down() || !r->node.failure()) continue;
      log_.info("group ", r->group, " failed; exiting");
      lifetime_.begin_shutdown(1);
    }
    co_return;
  }

  // -- leaders spread over the processes

  /// Once a second: hands each group this process leads to its preferred process, when that
  /// one is a voter of the group and was connected at this check and the previous one (a
  /// process that just came back, or whose connection flaps, is left alone for a round).
  /// One transfer at a time: a process gives its groups away one by one.
  asio::awaitable<void> balance_leaders() {
    std::set<raft::node_id> connected_now;
    for (const auto& [id, address] : cfg_.peers)
      if (id != cfg_.id && transport_.connected(id)) connected_now.insert(id);
    for (auto& r : replicas_) {
      if (lifetime_.shutting_down()) co_return;
      const raft::node_id target = preferred_leader(r->group, cfg_.peers);
      if (!should_hand_over(*r, target, connected_now)) continue;
      const auto moved = co_await r->node.async_transfer_leadership(target);
      if (moved)
        log_.info("group ", r->group, ": leadership handed to its preferred process ", target);
      else
        log_.info("group ", r->group, ": handing leadership to process ", target, " failed: ",
                  moved.error().message());
    }
    connected_before_ = std::move(connected_now);
  }

  bool should_hand_over(replica& r, raft::node_id target, const std::set<raft::node_id>& connected_now) const {
    return r.node.role() == raft::role::leader && target != cfg_.id && connected_before_.contains(target) &&
           connected_now.contains(target) && r.node.status().config.is_voter(target);
  }

  // -- clients

  /// One client connection: reads a line, answers a line, until the client closes.
  asio::awaitable<void> session(tcp::socket socket) {
    kv::client_port::tracked guard(clients_, socket);
    co_await kv::exchange_lines(socket, socket, [this](std::string_view line) { return handle(line); });
  }

  /// Executes one command line; returns the reply without its newline.
  asio::awaitable<std::string> handle(std::string_view line) {
    const kv::request req = kv::split_request(line);
    const std::string& cmd = req.command;
    if (cmd.empty()) co_return "ERR empty command";
    if (cmd == "STATUS") co_return req.args.empty() ? status_line() : group_status_line(req.args);
    if (cmd == "ADD" || cmd == "PROMOTE" || cmd == "REMOVE" || cmd == "TRANSFER")
      co_return "ERR unsupported (the members of every group are the processes in --peers)";
    if (!kv::takes_value(cmd) && cmd != "GET" && cmd != "DEL" && cmd != "LOCALGET" && cmd != "GROUP")
      co_return "ERR unknown command '" + cmd + "' (PUT, GET, DEL, APPEND, LOCALGET, GROUP, STATUS)";
    const kv::key_args k = kv::parse_key_args(cmd, req.args);
    if (!k.refusal.empty()) co_return k.refusal;
    if (cmd == "GROUP") co_return "OK " + std::to_string(group_of(k.key, cfg_.groups).value);
    // On this process's replica of the key's group: a write only its leader takes (a follower's
    // not_leader names it, and the client goes there); a GET from any replica.
    replica& r = replica_for(k.key);
    co_return co_await kv::answer_key_command(cmd, k, r.node, r.sm, lifetime_.shutting_down());
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
    std::ostringstream os;
    os << "OK group=" << g;
    kv::write_node_status(os, r.node.status());
    kv::write_map_status(os, r.sm);
    return os.str();
  }

  asio::io_context& io_;
  const config& cfg_;
  kv::server_log log_;
  raft::tcp_transport transport_;  // the process's one transport
  raft::group_router<raft::tcp_transport> router_;
  raft::shared_log storage_;  // the process's one log: outlives every group's handle in replicas_
  std::vector<std::unique_ptr<replica>> replicas_;  // group g at g-1; destroyed before the router
  kv::client_port clients_;
  kv::server_lifetime lifetime_;
  std::set<raft::node_id> connected_before_;  // the processes connected at the previous balance check
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
  return kv::run_or_report(kv::server_log("sharded_kv_server", cfg.id), [&] { return run(cfg); });
}
