// benchmarks/support/groups_run.hpp - `replication_bench --groups N`: many Raft groups per process
// (Multi-Raft, raft/multi/group_router.hpp).
//
// Each of the --nodes hosts is a replica of every group: one transport per host (tcp_transport:
// one connection per pair of hosts), one raft::group_router, and per group a raft::node with a
// null state machine and memory storage, or (--storage shared-log) its group of the host's one
// raft::shared_log (one append stream, one fdatasync per round for all the host's groups). With --transport tcp-procs every host is a process of
// its own (this process hosts node 1, the others run `--role group-host`); otherwise all hosts
// share this process, on strands of one io_context (--threads).
//
// Leaders spread: group g prefers host ((g - 1) mod nodes) + 1, whose replica has the short
// election timeout (the others wait 10x longer, as the single-group run makes node 1 lead), so
// each host leads a third of the groups (with 3 nodes) and no leader moves while it lives.
// Proposer i proposes to group (i mod N) + 1, on the host that leads it, one proposal outstanding
// at a time; --proposers 0 leaves every group idle (to measure what idle groups cost).
//
// Reported: how long until every group had a leader, and how the leaders spread over the hosts;
// then, over the window, the entries committed per second over all groups, the latency
// distribution (merged over the hosts), the CPU of every process, and resident memory per group
// replica (growth since before the hosts were built, divided by the replicas).
//
// The group-host processes answer lines on their stdin (the parent's requests), one line each:
//   "port P" once started; "peers 1=P1 ..." starts the host; "leaders" -> "leaders n=K" (the
//   groups it leads); "load" -> "ok" (its proposers start); "window" -> "window cpu=.. sys=.."
//   (its counters restart; quiet=Q: its quiet replicas); "close" -> "closed completed=.. failed=.. cpu=.. sys=.. rss_kb=..
//   base_rss_kb=.. hist ..." (its proposers stop; the latency histogram's text ends the line);
//   "stop" or end of file: it stops every node and exits.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>

#include <raft/multi/group_router.hpp>
#include <raft/raft.hpp>
#include <raft/storage/shared_log.hpp>
#include <raft/transport/tcp.hpp>

#include "cluster.hpp"
#include "diagnostics.hpp"
#include "follower_processes.hpp"
#include "follower_protocol.hpp"
#include "latency_histogram.hpp"
#include "null_state_machine.hpp"
#include "on_executor.hpp"
#include "params.hpp"
#include "process_usage.hpp"
#include "proposer_load.hpp"
#include "scratch_dir.hpp"

namespace raft_bench {

/// The host whose replica of group `g` has the short election timeout.
inline raft::node_id preferred_host(raft::group_id g, int nodes) {
  return raft::node_id{(g.value - 1) % std::uint64_t(nodes) + 1};
}

/// Options of host `id`'s replica of group `g`. Elections are not logged (10,000 groups would
/// print 10,000 lines): the control loop counts leaders by asking the nodes.
inline raft::options group_node_options(const params& p, raft::node_id id, raft::group_id g) {
  raft::options o;
  o.id = id;
  o.bootstrap = founders_of(p);
  const double election = preferred_host(g, p.nodes) == id ? p.election_ms : p.election_ms * follower_timeout_factor;
  o.election_timeout_min = from_ms(election);
  o.election_timeout_max = from_ms(2 * election);
  o.heartbeat_interval = from_ms(p.heartbeat_ms);
  o.snapshot_entries = p.snapshot_every;
  o.quiesce = p.quiesce;
  o.align_heartbeats = p.align_heartbeats;
  o.seed = id.value * 1000003 + g.value;
  o.logger.min_level = raft::log_level::warning;
  o.logger.sink = log_to_stderr;
  return o;
}

/// The router's settings: with --quiesce, it pings the other hosts every heartbeat interval and
/// finds one down after the preferred election timeout of silence.
inline raft::group_router_options router_options(const params& p, raft::node_id id) {
  raft::group_router_options o;
  o.self = id;
  if (!p.quiesce) return o;
  for (int i = 1; i <= p.nodes; ++i)
    if (std::uint64_t(i) != id.value) o.watch.push_back(raft::node_id{std::uint64_t(i)});
  o.liveness_interval = from_ms(p.heartbeat_ms);
  o.liveness_timeout = from_ms(p.election_ms);
  return o;
}

/// Leaders of one host, and the election rounds its replicas started (node_metrics).
struct election_counts {
  std::size_t leaders = 0;
  std::uint64_t pre_vote_rounds = 0;
  std::uint64_t vote_rounds = 0;
};

/// One host: its transport, its router, its shared log (--storage shared-log) and its replica of
/// every group. Built on any thread; used only on its executor from start() on.
template <class Transport, class Storage>
class group_host {
 public:
  static constexpr bool shared_storage = std::is_same_v<Storage, raft::shared_log_group>;
  using node_type = raft::node<null_state_machine, Storage, raft::group_transport<Transport>>;

  /// `dir`: where the shared log lives (unused with memory storage).
  group_host(const params& p, raft::node_id id, asio::any_io_executor ex, std::unique_ptr<Transport> shared,
             const std::filesystem::path& dir)
      : p_(p), id_(id), ex_(std::move(ex)), shared_(std::move(shared)), router_(*shared_, ex_, router_options(p, id)) {
    router_.on_peer_down([this](raft::node_id down) {
      for (auto& r : replicas_) r->node->peer_down(down);
    });
    if constexpr (shared_storage) {
      raft::shared_log_options o;
      o.fsync = p.fsync;
      o.prefill_bytes = p.prefill;
      log_ = std::make_unique<raft::shared_log>(dir, std::move(o));
    } else {
      (void)dir;
    }
    replicas_.reserve(p.groups);
    for (std::uint64_t g = 1; g <= p.groups; ++g) {
      auto r = std::make_unique<replica>();
      if constexpr (shared_storage)
        r->storage.emplace(log_->open_group(raft::group_id{g}));
      else
        r->storage.emplace();
      r->transport.emplace(router_, raft::group_id{g});
      r->node.emplace(ex_, group_node_options(p, id, raft::group_id{g}), r->sm, *r->storage, *r->transport);
      replicas_.push_back(std::move(r));
    }
  }

  /// The shared log's writes and syncs so far (zeros with memory storage). Any thread.
  [[nodiscard]] storage_counts storage() const {
    if constexpr (shared_storage) {
      const auto st = log_->stats();
      return {st.entries_written, st.syncs, st.write_rounds};
    } else {
      return {};
    }
  }

  [[nodiscard]] raft::node_id id() const noexcept { return id_; }
  [[nodiscard]] const asio::any_io_executor& executor() const noexcept { return ex_; }
  [[nodiscard]] Transport& shared() noexcept { return *shared_; }

  /// Starts the router and every node (before the io_context runs, or on the executor).
  void start() {
    asio::co_spawn(ex_, router_.run(), asio::detached);
    for (auto& r : replicas_) r->node->start();
  }

  /// The groups this host leads now, and the election rounds its replicas started so far.
  [[nodiscard]] election_counts elections() const {
    election_counts c;
    for (auto& r : replicas_) {
      c.leaders += r->node->role() == raft::role::leader;
      c.pre_vote_rounds += r->node->metrics().pre_votes_started;
      c.vote_rounds += r->node->metrics().elections_started;
    }
    return c;
  }

  /// Starts the proposers whose group this host leads.
  void start_load() {
    load.payload.resize(p_.payload);
    for (std::size_t i = 0; i < p_.payload; ++i) load.payload[i] = std::byte(i * 131 + 7);
    for (std::size_t i = 0; i < p_.proposers; ++i) {
      node_type& n = *replicas_[i % replicas_.size()]->node;
      if (n.role() == raft::role::leader) load.targets.push_back(&n);
    }
    load.start(p_.coroutine_client);
  }

  /// The groups whose replica here is quiet.
  [[nodiscard]] std::size_t quiet() const {
    std::size_t n = 0;
    for (auto& r : replicas_) n += r->node->quiesced();
    return n;
  }

  /// Whether a node of this host failed (storage error, invariant breach).
  [[nodiscard]] bool failed() const {
    return std::any_of(replicas_.begin(), replicas_.end(), [](auto& r) { return bool(r->node->failure()); });
  }

  /// Stops every node, then the router and the transport. On the executor.
  asio::awaitable<void> stop() {
    for (auto& r : replicas_) co_await r->node->async_stop();
    router_.close();
  }

  proposer_load<node_type> load;

 private:
  struct replica {
    null_state_machine sm;
    std::optional<Storage> storage;
    std::optional<raft::group_transport<Transport>> transport;
    std::optional<node_type> node;
  };

  const params& p_;
  raft::node_id id_;
  asio::any_io_executor ex_;
  std::unique_ptr<Transport> shared_;
  std::unique_ptr<raft::shared_log> log_;  // --storage shared-log: outlives the groups' handles
  raft::group_router<Transport> router_;
  std::vector<std::unique_ptr<replica>> replicas_;  // destroyed first: nodes before the router
};

/// Host `id`'s shared-log directory under the run's scratch directory (p.dir, set by the measuring
/// process), or "-" with memory storage.
inline std::string host_directory(const params& p, raft::node_id id) {
  if (p.storage != storage_kind::shared_log) return "-";
  return (std::filesystem::path(p.dir) / ("host-" + std::to_string(id.value))).string();
}

/// The arguments that make this program the group host `id` of run `p` (--transport tcp-procs).
inline std::vector<std::string> group_host_args(const params& p, raft::node_id id) {
  return {"replication_bench", "--role", "group-host", "--id", std::to_string(id.value),
          "--nodes", std::to_string(p.nodes), "--groups", std::to_string(p.groups),
          "--payload", std::to_string(p.payload), "--proposers", std::to_string(p.proposers),
          "--client", name_of(client_names, p.coroutine_client),
          "--heartbeat-ms", std::to_string(p.heartbeat_ms), "--election-ms", std::to_string(p.election_ms),
          "--snapshot-every", std::to_string(p.snapshot_every), "--cluster-id", std::to_string(p.cluster_id),
          "--quiesce", name_of(on_off_names, p.quiesce), "--align-heartbeats", name_of(on_off_names, p.align_heartbeats),
          "--storage", to_string(p.storage),
          "--fsync", name_of(on_off_names, p.fsync), "--prefill", std::to_string(p.prefill),
          "--node-dir", host_directory(p, id),
          "--parent-pid", std::to_string(::getpid())};
}

/// What one host reports when the window closes.
struct host_window {
  std::uint64_t completed = 0;
  std::uint64_t failed = 0;
  latency_histogram latency;
};

/// A process's usage for the report: CPU at the window's edges and memory; quiet replicas.
struct usage_marks {
  double cpu_open = 0, sys_open = 0, cpu_close = 0, sys_close = 0;
  double rss_kb = 0, base_rss_kb = 0;
  std::size_t quiet = 0;
  storage_counts storage_open, storage_close;  // summed over the hosts' shared logs
};

inline std::string storage_fields(const storage_counts& s) {
  return " entries=" + std::to_string(s.entries) + " syncs=" + std::to_string(s.syncs) +
         " rounds=" + std::to_string(s.rounds);
}
inline storage_counts storage_of_fields(std::map<std::string, double>& f) {
  return {static_cast<std::uint64_t>(f["entries"]), static_cast<std::uint64_t>(f["syncs"]),
          static_cast<std::uint64_t>(f["rounds"])};
}

inline std::string closed_line(const host_window& w, const cpu_sample& c, long base_rss_kb, const storage_counts& s) {
  char head[256];
  std::snprintf(head, sizeof head, "closed completed=%llu failed=%llu cpu=%.6f sys=%.6f rss_kb=%ld base_rss_kb=%ld",
                static_cast<unsigned long long>(w.completed), static_cast<unsigned long long>(w.failed),
                c.cpu_seconds, c.system_seconds, c.rss_kb, base_rss_kb);
  return head + storage_fields(s) + " hist " + w.latency.text() + "\n";
}

/// The whole life of a group-host process (--role group-host).
template <class Storage>
int group_host_main(const params& p) {
  if (::getppid() != static_cast<pid_t>(p.parent_pid)) return 1;  // orphaned already
  ::signal(SIGPIPE, SIG_IGN);
  const long base_rss_kb = sample_cpu().rss_kb;
  asio::io_context io{1};
  const raft::node_id id{p.id};
  group_host<raft::tcp_transport, Storage> host(p, id, io.get_executor(), make_tcp_transport(p, id, io.get_executor()),
                                                p.node_dir);
  if (!write_all(1, port_line(host.shared().local_endpoint().port()))) return 1;
  asio::posix::stream_descriptor in{io, ::dup(0)};
  int rc = 0;
  bool started = false;
  auto answer = [&](const std::string& line) -> bool {
    if (is_peers_line(line)) {
      set_peer_ports(host.shared(), ports_of_peers_line(line));
      host.start();
      started = true;
      return true;
    }
    if (line == "leaders") {
      const election_counts c = host.elections();
      return write_all(1, "leaders n=" + std::to_string(c.leaders) + " pre_votes=" + std::to_string(c.pre_vote_rounds) +
                              " votes=" + std::to_string(c.vote_rounds) + "\n");
    }
    if (line == "load") {
      host.start_load();
      return write_all(1, "ok\n");
    }
    if (line == "window") {
      host.load.stage = phase::measure;
      const cpu_sample c = sample_cpu();
      char reply[128];
      std::snprintf(reply, sizeof reply, "window cpu=%.6f sys=%.6f quiet=%zu", c.cpu_seconds, c.system_seconds,
                    host.quiet());
      return write_all(1, reply + storage_fields(host.storage()) + "\n");
    }
    if (line == "close") {
      host.load.stage = phase::drain;
      const host_window w{host.load.completed, host.load.failed, host.load.latency};
      return write_all(1, closed_line(w, sample_cpu(), base_rss_kb, host.storage()));
    }
    return line != "stop";
  };
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        std::string buffer;
        for (;;) {
          std::error_code ec;
          const std::size_t n = co_await asio::async_read_until(in, asio::dynamic_buffer(buffer), '\n',
                                                                asio::redirect_error(asio::use_awaitable, ec));
          if (ec) break;  // end of file: the parent is gone or done
          const std::string line = buffer.substr(0, n - 1);
          buffer.erase(0, n);
          if (!answer(line)) break;
        }
        if (started) {
          co_await host.stop();
          if (host.failed()) rc = 1;
        } else {
          host.shared().close();
        }
        std::error_code ignored;
        in.close(ignored);
      },
      [](std::exception_ptr e) {
        if (!e) return;
        print_exception("replication_bench (group host)", e);
        std::_Exit(1);
      });
  io.run();
  return rc;
}

/// The measuring process of a --groups run.
template <class Transport, class Storage>
class groups_bench {
 public:
  using host = group_host<Transport, Storage>;
  static constexpr bool is_tcp = std::is_same_v<Transport, raft::tcp_transport>;

  explicit groups_bench(params p) : p_(std::move(p)), io_(p_.threads) {}

  int run() {
    base_rss_kb_ = double(sample_cpu().rss_kb);
    if (p_.storage == storage_kind::shared_log) {
      scratch_.emplace(p_.dir);
      p_.dir = scratch_->path().string();  // the hosts' directories go under it
      for (int i = 1; i <= p_.nodes; ++i)
        std::filesystem::create_directories(host_directory(p_, raft::node_id{std::uint64_t(i)}));
    }
    if (p_.transport == transport_kind::tcp_procs)
      for (int i = 2; i <= p_.nodes; ++i) followers_.spawn(raft::node_id{std::uint64_t(i)}, group_host_args(p_, raft::node_id{std::uint64_t(i)}));
    const auto built = bench_clock::now();
    for (int i = 1; i <= p_.nodes; ++i) {
      if (p_.transport == transport_kind::tcp_procs && i != 1) continue;
      const raft::node_id id{std::uint64_t(i)};
      const auto ex = p_.threads > 1 ? asio::any_io_executor(asio::make_strand(io_)) : io_.get_executor();
      hosts_.push_back(
          std::make_unique<host>(p_, id, ex, make_transport<Transport>(p_, id, ex, network_), host_directory(p_, id)));
    }
    build_seconds_ = std::chrono::duration<double>(bench_clock::now() - built).count();
    if constexpr (is_tcp) {
      if (!exchange_ports()) return 1;
    }
    started_at_ = bench_clock::now();
    for (auto& h : hosts_) h->start();

    asio::steady_timer watchdog(io_, from_seconds(p_.warmup + p_.duration + 120));
    watchdog.async_wait([this](std::error_code ec) {
      if (ec) return;
      std::fprintf(stderr, "replication_bench --groups: did not finish in time, giving up\n");
      followers_.kill_all();
      std::_Exit(1);
    });
    int rc = 1;
    asio::co_spawn(
        asio::make_strand(io_),
        [&]() -> asio::awaitable<void> {
          rc = co_await control();
          watchdog.cancel();
        },
        [this](std::exception_ptr e) {
          if (!e) return;
          print_exception("replication_bench --groups", e);
          followers_.kill_all();
          std::_Exit(1);
        });
    std::vector<std::thread> extra;
    for (int i = 1; i < p_.threads; ++i) extra.emplace_back([this] { io_.run(); });
    io_.run();
    for (auto& t : extra) t.join();
    if (!followers_.reap(std::chrono::seconds(30))) rc = rc ? rc : 1;
    return rc;
  }

 private:
  bool exchange_ports() {
    port_map ports;
    for (auto& h : hosts_) ports[h->id()] = h->shared().local_endpoint().port();
    if (!raft_bench::exchange_ports(followers_, io_, ports, std::chrono::seconds(120))) return false;
    for (auto& h : hosts_) set_peer_ports(h->shared(), ports);
    return true;
  }

  /// Leaders and election rounds per host: this process's hosts, then the host processes.
  asio::awaitable<std::vector<election_counts>> elections_per_host() {
    std::vector<election_counts> out;
    for (auto& h : hosts_) {
      host* hp = h.get();
      out.push_back(co_await run_on(hp->executor(), [hp] { return hp->elections(); }));
    }
    if (!followers_.empty())
      for (const std::string& line : co_await followers_.ask_all("leaders")) {
        auto f = parse_fields(line);
        out.push_back({static_cast<std::size_t>(f["n"]), static_cast<std::uint64_t>(f["pre_votes"]),
                       static_cast<std::uint64_t>(f["votes"])});
      }
    co_return out;
  }

  asio::awaitable<int> control() {
    // 1. Every group elects.
    std::vector<election_counts> leaders;
    for (;;) {
      co_await sleep_for(std::chrono::milliseconds(50));
      leaders = co_await elections_per_host();
      std::size_t total = 0;
      std::uint64_t vote_rounds = 0;
      for (auto& n : leaders) total += n.leaders, vote_rounds += n.vote_rounds;
      if (total >= p_.groups) break;
      if (bench_clock::now() - started_at_ > std::chrono::seconds(120)) {
        std::fprintf(stderr, "replication_bench --groups: %zu of %zu groups have a leader after 120 s (%llu vote rounds)\n",
                     total, p_.groups, static_cast<unsigned long long>(vote_rounds));
        co_await stop_all();
        co_return 1;
      }
    }
    const double elect_seconds = std::chrono::duration<double>(bench_clock::now() - started_at_).count();

    // 2. Load, warm-up.
    for (auto& h : hosts_) {
      host* hp = h.get();
      co_await run_on(hp->executor(), [hp] {
        hp->start_load();
        return 0;
      });
    }
    if (!followers_.empty()) co_await followers_.ask_all("load");
    co_await sleep_for(from_seconds(p_.warmup));

    // 3. The window.
    usage_marks usage;
    const auto opened = bench_clock::now();
    for (auto& h : hosts_) {
      host* hp = h.get();
      usage.quiet += co_await run_on(hp->executor(), [hp] {
        hp->load.stage = phase::measure;
        return hp->quiet();
      });
    }
    const cpu_sample own_open = sample_cpu();
    usage.cpu_open += own_open.cpu_seconds;
    usage.sys_open += own_open.system_seconds;
    for (auto& h : hosts_) usage.storage_open += h->storage();
    if (!followers_.empty())
      for (const std::string& line : co_await followers_.ask_all("window")) {
        auto f = parse_fields(line);
        usage.cpu_open += f["cpu"];
        usage.sys_open += f["sys"];
        usage.quiet += static_cast<std::size_t>(f["quiet"]);
        usage.storage_open += storage_of_fields(f);
      }
    co_await sleep_for(from_seconds(p_.duration));
    host_window total;
    for (auto& h : hosts_) {
      host* hp = h.get();
      const host_window w = co_await run_on(hp->executor(), [hp] {
        hp->load.stage = phase::drain;
        return host_window{hp->load.completed, hp->load.failed, hp->load.latency};
      });
      total.completed += w.completed;
      total.failed += w.failed;
      total.latency.merge(w.latency);
    }
    const double window = std::chrono::duration<double>(bench_clock::now() - opened).count();
    const cpu_sample own_close = sample_cpu();
    usage.cpu_close += own_close.cpu_seconds;
    usage.sys_close += own_close.system_seconds;
    usage.rss_kb += double(own_close.rss_kb);
    usage.base_rss_kb += base_rss_kb_;
    for (auto& h : hosts_) usage.storage_close += h->storage();
    if (!followers_.empty())
      for (const std::string& line : co_await followers_.ask_all("close")) {
        const auto hist_at = line.find(" hist ");
        auto f = parse_fields(line.substr(0, hist_at));
        total.completed += static_cast<std::uint64_t>(f["completed"]);
        total.failed += static_cast<std::uint64_t>(f["failed"]);
        usage.cpu_close += f["cpu"];
        usage.sys_close += f["sys"];
        usage.rss_kb += f["rss_kb"];
        usage.base_rss_kb += f["base_rss_kb"];
        usage.storage_close += storage_of_fields(f);
        if (hist_at != std::string::npos) total.latency.merge(latency_histogram::parse(line.substr(hist_at + 6)));
      }

    report(leaders, elect_seconds, window, total, usage);
    co_await stop_all();
    // --check: no proposal failed, and something committed if anyone proposed.
    co_return p_.check && (total.failed > 0 || (p_.proposers > 0 && total.completed == 0)) ? 3 : 0;
  }

  asio::awaitable<void> stop_all() {
    co_await sleep_for(std::chrono::milliseconds(100));  // outstanding proposals complete or fail
    for (auto& h : hosts_) co_await asio::co_spawn(h->executor(), h->stop(), asio::use_awaitable);
    if (!followers_.empty()) followers_.stop_all();
  }

  void report(const std::vector<election_counts>& leaders, double elect_seconds, double window, const host_window& total,
              const usage_marks& u) const {
    const double third = double(p_.groups) / double(p_.nodes);
    double spread = 0;
    std::string per_host;
    election_counts all;
    for (auto& n : leaders) {
      spread = std::max(spread, std::abs(double(n.leaders) - third) / third);
      per_host += (per_host.empty() ? "" : " / ") + std::to_string(n.leaders);
      all.pre_vote_rounds += n.pre_vote_rounds;
      all.vote_rounds += n.vote_rounds;
    }
    const double cpu = u.cpu_close - u.cpu_open;
    const double sys = u.sys_close - u.sys_open;
    const double replicas = double(p_.groups) * double(p_.nodes);
    const auto us = [&](double q) { return total.latency.quantile(q) / 1e3; };
    const char* where = p_.transport == transport_kind::tcp_procs ? "tcp_transport over 127.0.0.1, a process per node"
                        : is_tcp                                  ? "tcp_transport over 127.0.0.1, 1 process"
                                                                  : "local_transport, 1 process";
    const std::string storage = p_.storage == storage_kind::shared_log
                                    ? std::string("a shared log per node, fsync ") + (p_.fsync ? "on" : "off")
                                    : std::string("memory storage");
    std::printf("replication_bench --groups %zu: %d nodes, %s, %s\n", p_.groups, p_.nodes, where, storage.c_str());
    std::printf("  parameters      : payload=%zu B proposers=%zu warmup=%g s duration=%g s threads=%d "
                "heartbeat=%g ms election=%g ms\n",
                p_.payload, p_.proposers, p_.warmup, p_.duration, p_.threads, p_.heartbeat_ms, p_.election_ms);
    std::printf("  leaders         : every group within %.2f s of start (hosts built in %.2f s); per node %s "
                "(furthest %.1f%% from an even share)\n",
                elect_seconds, build_seconds_, per_host.c_str(), spread * 100);
    std::printf("  elections       : %llu vote rounds and %llu pre-vote rounds by then, all replicas together "
                "(%.2f vote rounds per group)\n",
                static_cast<unsigned long long>(all.vote_rounds), static_cast<unsigned long long>(all.pre_vote_rounds),
                double(all.vote_rounds) / double(p_.groups));
    std::printf("  throughput      : %.0f entries/s committed (%llu in %.2f s), %llu proposals failed\n",
                window > 0 ? double(total.completed) / window : 0.0,
                static_cast<unsigned long long>(total.completed), window,
                static_cast<unsigned long long>(total.failed));
    std::printf("  latency         : p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us\n", us(0.5), us(0.99),
                us(0.999), double(total.latency.max()) / 1e3);
    std::printf("  cpu             : %.3f cores over all processes (%.0f%% in the kernel)\n",
                window > 0 ? cpu / window : 0.0, cpu > 0 ? 100 * sys / cpu : 0.0);
    std::printf("  memory          : %.1f MB resident (all processes), %.1f KB per group replica\n",
                u.rss_kb / 1024, replicas > 0 ? (u.rss_kb - u.base_rss_kb) / replicas : 0.0);
    std::printf("  quiescence      : %s; %zu of %.0f replicas quiet at the window's start; heartbeats %s\n",
                p_.quiesce ? "on" : "off", u.quiet, replicas, p_.align_heartbeats ? "aligned" : "not aligned");
    if (p_.storage == storage_kind::shared_log) {
      const storage_counts s = u.storage_close - u.storage_open;
      std::printf("  shared logs     : %.0f fsyncs/s per node, %.1f entries per fsync (all groups of a node), "
                  "%.1f entries per write round\n",
                  window > 0 ? double(s.syncs) / window / p_.nodes : 0.0,
                  s.syncs ? double(s.entries) / double(s.syncs) : 0.0,
                  s.rounds ? double(s.entries) / double(s.rounds) : 0.0);
    }
  }

  params p_;
  std::optional<scratch_dir> scratch_;  // first: removed after everything else is gone
  asio::io_context io_;
  raft::local_network network_;
  follower_group followers_;
  std::vector<std::unique_ptr<host>> hosts_;  // after network_ and io_: destroyed first
  bench_clock::time_point started_at_;
  double base_rss_kb_ = 0;
  double build_seconds_ = 0;
};

}  // namespace raft_bench
