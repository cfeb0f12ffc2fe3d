// benchmarks/replication_bench.cpp - committed entries per second through raft::node.
//
// The method:
//   - N voters (--nodes, 3 or 5), all bootstrapped as one cluster;
//   - P proposers (--proposers, default 256), each keeping exactly one proposal of --payload bytes
//     (default 64) outstanding on the leader: it proposes, waits until async_propose() completes
//     (the entry is committed and applied on the leader), then immediately proposes the next one;
//   - a warm-up (--warmup seconds, default 1), then a measurement window (--duration seconds,
//     default 5). Everything reported is measured inside the window only.
// Reported: committed entries/s, MB/s of payload, latency from async_propose() to completion
// (p50/p99/p99.9/max, log-linear histogram, <= 3% bucket error), CPU seconds per million entries
// (getrusage, all threads of every process of the cluster), heap allocations per entry (on glibc
// this program interposes malloc to count them; summed over the cluster's processes), peak RSS
// (ru_maxrss, summed over the cluster's processes), with file storage the fsyncs per second and
// entries per fsync, and leader elections during the run (must be 0 once the first leader is up;
// a nonzero count makes the figures meaningless).
//
// Where the cluster runs (--transport):
//   local      every node in this process, raft::local_transport (in-memory mailboxes)
//   tcp        every node in this process, raft::tcp_transport over 127.0.0.1
//   tcp-procs  one OS process per node over 127.0.0.1: this process hosts node 1 (the leader)
//              and re-executes itself (/proc/self/exe, hidden `--role follower` mode) once per
//              other node. Each process binds port 0 and reports the port it got over a pipe, so
//              no port is guessed. A follower dies with this process (PR_SET_PDEATHSIG, and it
//              exits when its control pipe reaches end of file); every follower is reaped, and
//              killed if it does not exit in time.
// Storage (--storage): memory (raft::memory_storage) or file (raft::file_storage, one directory
// per node under a fresh temporary directory in --dir, default $TMPDIR or /tmp, removed
// afterwards; --fsync on|off).
//
// Node 1 draws its election timeout from [--election-ms, 2x); the other nodes from 10x that, so
// node 1 is elected first and stays the leader (with tcp-procs it must be the node in the
// measuring process). The first election therefore takes 1-2 s before the warm-up starts.
//
// Profiling: under `valgrind --tool=callgrind --instr-atstart=no` only the measurement window is
// instrumented (the program toggles it through <valgrind/callgrind.h> when that header exists).
// Valgrind slows everything down ~50x; use e.g. --warmup 0.2 --duration 1 (and not tcp-procs).
//
// --threads 1 (default): every node of this process on one io_context run by one thread.
// --threads k: the io_context is run by k threads and each node lives on its own strand.
// --client callback|coroutine: how proposers wait (see support/proposer_load.hpp). --json prints
// one JSON object instead of text, --csv a header line and one line of values. --latency-cdf FILE
// writes the latency distribution (one line per histogram bucket: upper bound in microseconds,
// cumulative fraction). --check exits with status 3 if the run was not clean (a leader change,
// a failed proposal, or nothing committed). --heartbeat-ms (default 100) and --election-ms
// (default 1000) set the node's timers.
//
// --groups N: many groups per node instead (Multi-Raft; support/groups_run.hpp has the method):
// every node is a host of N groups over one transport and one raft::group_router, leaders spread
// evenly (group g prefers node ((g - 1) mod nodes) + 1), proposer i proposes to group
// (i mod N) + 1 on its leader, and the report adds the time until every group had a leader, the
// leaders per node, the quiet replicas and the memory per replica. --proposers 0 leaves the
// groups idle; --quiesce on turns on options::quiesce with the routers' liveness;
// --align-heartbeats off turns off options::align_heartbeats (on by default here); --storage
// shared-log gives each host one raft::shared_log (fsyncs and entries per fsync reported), and
// --prefill its prefill_bytes (the zeros written ahead of its tail; default 1 MiB, 0: appends).
// With tcp-procs the other hosts run the hidden `--role group-host` mode.
//
// The state machine does nothing but count: the figures are the library's own cost, not a
// key-value store's.
//
// Allocations per entry are -1 in the JSON/CSV where they are not counted (not glibc, sanitizers).
//
// This file is the driver: the options, the run of one configuration, the report. The parts it is
// built from are in support/, one header each: the allocation counter, the latency histogram,
// process usage (CPU, RSS), the parameters, the null state machine, the cluster's nodes per
// configuration, the proposers' load, the follower processes (fork, exec, pipes, reaping), the
// lines they exchange with this process, the follower process's own main, the scratch directory
// and the stderr diagnostics.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>

#include <raft/raft.hpp>
#include <raft/storage/file.hpp>
#include <raft/transport/tcp.hpp>

#include "support/allocation_counter.hpp"  // interposes malloc: every allocation is counted
#include "support/cluster.hpp"
#include "support/diagnostics.hpp"
#include "support/follower_node.hpp"
#include "support/follower_processes.hpp"
#include "support/follower_protocol.hpp"
#include "support/groups_run.hpp"
#include "support/latency_histogram.hpp"
#include "support/on_executor.hpp"
#include "support/params.hpp"
#include "support/process_usage.hpp"
#include "support/proposer_load.hpp"
#include "support/scratch_dir.hpp"

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define RAFT_BENCH_PROFILE_ON() CALLGRIND_START_INSTRUMENTATION
#define RAFT_BENCH_PROFILE_OFF() CALLGRIND_STOP_INSTRUMENTATION
#else
#define RAFT_BENCH_PROFILE_ON() ((void)0)
#define RAFT_BENCH_PROFILE_OFF() ((void)0)
#endif

namespace {

using namespace raft_bench;
using namespace std::chrono_literals;

// -------------------------------------------------------------------------------------------------
// The command line.

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "replication_bench: %s\n"
               "usage: replication_bench [--nodes 3|5] [--payload BYTES] [--proposers P]\n"
               "                         [--warmup SECONDS] [--duration SECONDS] [--threads K]\n"
               "                         [--transport local|tcp|tcp-procs]\n"
               "                         [--storage memory|file|shared-log] [--fsync on|off] [--dir PATH]\n"
               "                         [--client callback|coroutine] [--heartbeat-ms MS]\n"
               "                         [--election-ms MS] [--json | --csv]\n"
               "                         [--latency-cdf FILE] [--check]\n"
               "                         [--snapshot-every ENTRIES] [--rss-every SECONDS]\n"
               "                         [--groups N] [--quiesce on|off] [--align-heartbeats on|off]\n"
               "                         [--prefill BYTES]\n",
               why);
  std::exit(2);
}

/// The value named `name` among `names`; any other name is a usage error saying `why`.
template <class T, std::size_t N>
T choose(const std::string& name, const named<T> (&names)[N], const char* why) {
  for (const auto& n : names)
    if (name == n.name) return n.value;
  usage(why);
}

params parse(int argc, char** argv) {
  params p;
  for (int i = 0; i < argc; ++i) {
    if (i) p.command_line += ' ';
    p.command_line += argv[i];
  }
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
      has_value = true;
    }
    if (arg == "--json" || arg == "--csv" || arg == "--check") {
      (arg == "--json" ? p.json : arg == "--csv" ? p.csv : p.check) = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") usage("help");
    if (!has_value) {
      if (i + 1 >= argc) usage(("missing value for " + arg).c_str());
      value = argv[++i];
    }
    char* end = nullptr;
    const double number = std::strtod(value.c_str(), &end);
    const bool numeric = !value.empty() && end && *end == '\0' && number >= 0;
    if (arg == "--client") {
      p.coroutine_client = choose(value, client_names, "--client is callback or coroutine");
    } else if (arg == "--transport") {
      p.transport = choose(value, transport_names, "--transport is local, tcp or tcp-procs");
    } else if (arg == "--storage") {
      p.storage = choose(value, storage_names, "--storage is memory, file or shared-log (with --groups)");
    } else if (arg == "--quiesce") {
      p.quiesce = choose(value, on_off_names, "--quiesce is on or off");
    } else if (arg == "--align-heartbeats") {
      p.align_heartbeats = choose(value, on_off_names, "--align-heartbeats is on or off");
    } else if (arg == "--fsync") {
      p.fsync = choose(value, on_off_names, "--fsync is on or off");
    } else if (arg == "--dir") {
      p.dir = value;
    } else if (arg == "--latency-cdf") {
      p.latency_cdf = value;
    } else if (arg == "--role") {
      if (value != "follower" && value != "group-host")
        usage("--role is follower or group-host (used by --transport tcp-procs)");
      (value == "follower" ? p.follower : p.group_host) = true;
    } else if (arg == "--node-dir") {
      p.node_dir = value;
    } else if (arg == "--cluster-id") {
      p.cluster_id = std::strtoull(value.c_str(), nullptr, 10);
    } else if (!numeric) {
      usage(("bad value for " + arg + ": " + value).c_str());
    } else if (arg == "--nodes") {
      p.nodes = static_cast<int>(number);
    } else if (arg == "--payload") {
      p.payload = static_cast<std::size_t>(number);
    } else if (arg == "--proposers") {
      p.proposers = static_cast<std::size_t>(number);
    } else if (arg == "--groups") {
      p.groups = static_cast<std::size_t>(number);
    } else if (arg == "--prefill") {
      p.prefill = static_cast<std::size_t>(number);
    } else if (arg == "--warmup") {
      p.warmup = number;
    } else if (arg == "--duration") {
      p.duration = number;
    } else if (arg == "--threads") {
      p.threads = static_cast<int>(number);
    } else if (arg == "--heartbeat-ms") {
      p.heartbeat_ms = number;
    } else if (arg == "--election-ms") {
      p.election_ms = number;
    } else if (arg == "--snapshot-every") {
      p.snapshot_every = static_cast<std::uint64_t>(number);
    } else if (arg == "--rss-every") {
      p.rss_every = number;
    } else if (arg == "--id") {
      p.id = static_cast<std::uint64_t>(number);
    } else if (arg == "--parent-pid") {
      p.parent_pid = static_cast<long>(number);
    } else {
      usage(("unknown option " + arg).c_str());
    }
  }
  if (p.nodes < 1 || p.nodes > 9) usage("--nodes must be 1..9");
  if (p.proposers < 1 && p.groups == 0) usage("--proposers must be at least 1 (0 only with --groups)");
  if (p.groups > 0 && p.storage == storage_kind::file)
    usage("--groups runs on --storage memory or shared-log (one log per process)");
  if (p.groups == 0 && p.storage == storage_kind::shared_log) usage("--storage shared-log needs --groups");
  if (p.threads < 1 || p.threads > 64) usage("--threads must be 1..64");
  if (p.duration <= 0) usage("--duration must be positive");
  if (p.json && p.csv) usage("--json and --csv exclude each other");
  if (p.heartbeat_ms <= 0 || p.heartbeat_ms >= p.election_ms)
    usage("--heartbeat-ms must be positive and below --election-ms");
  if (p.follower && (p.id < 2 || p.node_dir.empty() || p.parent_pid <= 0))
    usage("--role follower is started by --transport tcp-procs, not by hand");
  if (p.group_host && (p.id < 2 || p.groups == 0 || p.parent_pid <= 0 || p.node_dir.empty()))
    usage("--role group-host is started by --groups with --transport tcp-procs, not by hand");
  return p;
}

/// The arguments that make this program a follower process hosting node `id` of the run `p`.
std::vector<std::string> follower_args(const params& p, raft::node_id id, const std::string& node_dir) {
  return {"replication_bench", "--role", "follower", "--id", std::to_string(id.value),
          "--nodes", std::to_string(p.nodes), "--storage", to_string(p.storage),
          "--fsync", name_of(on_off_names, p.fsync), "--heartbeat-ms", std::to_string(p.heartbeat_ms),
          "--election-ms", std::to_string(p.election_ms), "--snapshot-every",
          std::to_string(p.snapshot_every), "--cluster-id",
          std::to_string(p.cluster_id), "--parent-pid", std::to_string(::getpid()),
          "--node-dir", node_dir};
}

// -------------------------------------------------------------------------------------------------
// The outcome of a run, and the report.

struct outcome {
  double load_before = -1;
  std::uint64_t entries = 0;
  double window_seconds = 0;
  double cpu_seconds = 0;         // every process of the cluster
  double system_seconds = 0;      // of which in the kernel
  double leader_cpu_seconds = 0;  // this process
  std::optional<std::uint64_t> allocations;
  double peak_rss_kb = 0;          // summed over the cluster's processes
  double rss_start_kb = 0;         // resident at the window's start and end, summed likewise
  double rss_end_kb = 0;
  storage_counts leader_storage;   // in the window
  storage_counts all_storage;      // in the window, every node
  latency_histogram latency;
  std::uint64_t failed = 0;
  std::optional<raft::error> first_error;
  std::uint64_t leader_id = 0;
  std::uint64_t term = 0;
  std::uint64_t elections_after_start = 0;  // leaders elected after the first: must be 0
  std::vector<std::string> final_status;
  std::vector<long> follower_pids;
  std::string scratch;
};

/// --check: something committed, no proposal failed, no leader changed.
bool clean(const outcome& out) {
  return out.entries > 0 && out.failed == 0 && out.elections_after_start == 0;
}

/// The figures reported, derived once for every output format.
struct figures {
  double secs = 0;
  double rate = 0;  // entries/s
  double mbps = 0;  // of payload
  double cpu_per_m = 0;
  double cores = 0;
  double kernel_share = 0;
  unsigned hw = 1;
  double allocs = -1;  // per entry; -1: not counted on this platform
  double per_fsync = 0, per_round = 0, fsyncs_per_s = 0, all_per_fsync = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0, mean_us = 0;
  int processes = 1;
  bool file = false;
};

figures figures_of(const params& p, const outcome& out) {
  const auto ratio = [](std::uint64_t a, std::uint64_t b) { return b ? double(a) / double(b) : 0.0; };
  const auto us = [&](double q) { return out.latency.quantile(q) / 1e3; };
  figures f;
  f.secs = out.window_seconds;
  f.rate = f.secs > 0 ? double(out.entries) / f.secs : 0;
  f.mbps = f.rate * double(p.payload) / 1e6;
  f.cpu_per_m = out.entries ? out.cpu_seconds / (double(out.entries) / 1e6) : 0;
  f.cores = f.secs > 0 ? out.cpu_seconds / f.secs : 0;
  f.kernel_share = out.cpu_seconds > 0 ? out.system_seconds / out.cpu_seconds : 0;
  f.hw = std::max(1u, std::thread::hardware_concurrency());
  f.allocs = !out.allocations ? -1 : out.entries ? double(*out.allocations) / double(out.entries) : 0;
  const storage_counts& ls = out.leader_storage;
  f.per_fsync = ratio(ls.entries, ls.syncs);
  f.per_round = ratio(ls.entries, ls.rounds);
  f.fsyncs_per_s = f.secs > 0 ? double(ls.syncs) / f.secs : 0;
  f.all_per_fsync = ratio(out.all_storage.entries, out.all_storage.syncs);
  f.p50_us = us(0.5);
  f.p99_us = us(0.99);
  f.p999_us = us(0.999);
  f.max_us = double(out.latency.max()) / 1e3;
  f.mean_us = out.latency.mean() / 1e3;
  f.processes = p.transport == transport_kind::tcp_procs ? p.nodes : 1;
  f.file = p.storage == storage_kind::file;
  return f;
}

/// One reported figure: its name in the CSV header and the JSON object, and its text.
struct field {
  std::string name;
  std::string value;
  bool quoted = false;  // a string in JSON
};

std::string format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

std::vector<field> fields_of(const params& p, const outcome& out, const figures& f) {
  const auto u64 = [](std::uint64_t v) { return std::to_string(v); };
  return {
      {"transport", to_string(p.transport), true},
      {"storage", to_string(p.storage), true},
      {"fsync", f.file ? name_of(on_off_names, p.fsync) : "-", true},
      {"processes", std::to_string(f.processes)},
      {"nodes", std::to_string(p.nodes)},
      {"payload", std::to_string(p.payload)},
      {"proposers", std::to_string(p.proposers)},
      {"threads", std::to_string(p.threads)},
      {"client", name_of(client_names, p.coroutine_client), true},
      {"warmup_s", format("%g", p.warmup)},
      {"duration_s", format("%g", p.duration)},
      {"heartbeat_ms", format("%g", p.heartbeat_ms)},
      {"election_ms", format("%g", p.election_ms)},
      {"entries", u64(out.entries)},
      {"window_s", format("%.3f", f.secs)},
      {"entries_per_s", format("%.0f", f.rate)},
      {"mb_per_s", format("%.2f", f.mbps)},
      {"p50_us", format("%.1f", f.p50_us)},
      {"p99_us", format("%.1f", f.p99_us)},
      {"p999_us", format("%.1f", f.p999_us)},
      {"max_us", format("%.1f", f.max_us)},
      {"mean_us", format("%.1f", f.mean_us)},
      {"cpu_s", format("%.3f", out.cpu_seconds)},
      {"cpu_s_per_million", format("%.3f", f.cpu_per_m)},
      {"cpu_cores", format("%.3f", f.cores)},
      {"cpu_share", format("%.3f", f.cores / f.hw)},
      {"kernel_cpu_share", format("%.3f", f.kernel_share)},
      {"leader_process_cpu_s", format("%.3f", out.leader_cpu_seconds)},
      {"allocations_per_entry", format("%.2f", f.allocs)},
      {"peak_rss_mb", format("%.1f", out.peak_rss_kb / 1024)},
      {"rss_start_mb", format("%.1f", out.rss_start_kb / 1024)},
      {"rss_end_mb", format("%.1f", out.rss_end_kb / 1024)},
      {"snapshot_every", u64(p.snapshot_every)},
      {"fsyncs_per_s", format("%.1f", f.fsyncs_per_s)},
      {"entries_per_fsync", format("%.1f", f.per_fsync)},
      {"entries_per_fsync_all_nodes", format("%.1f", f.all_per_fsync)},
      {"entries_per_write_round", format("%.1f", f.per_round)},
      {"leader", u64(out.leader_id)},
      {"term", u64(out.term)},
      {"leader_changes", u64(out.elections_after_start)},
      {"failed_proposals", u64(out.failed)},
      {"load_average", format("%.2f", out.load_before)},
      {"hardware_threads", std::to_string(f.hw)},
      {"command", p.command_line, true},
  };
}

/// One JSON object, flat except the latency figures, which keep their historical shape
/// "latency_us":{"p50":..,"p99":..,"p999":..,"max":..,"mean":..}.
void print_json(const std::vector<field>& fields) {
  std::string out = "{";
  std::string latency;
  for (const field& f : fields) {
    std::string value = f.value;
    if (f.quoted) {
      std::string escaped = "\"";
      for (char c : value) {
        if (c == '"' || c == '\\') escaped += '\\';
        escaped += c;
      }
      value = escaped + "\"";
    }
    const std::string_view n = f.name;
    if (n == "p50_us" || n == "p99_us" || n == "p999_us" || n == "max_us" || n == "mean_us") {
      latency += (latency.empty() ? "" : ",") + ("\"" + std::string(n.substr(0, n.size() - 3)) + "\":" + value);
      if (n == "mean_us") out += ",\"latency_us\":{" + latency + "}";
      continue;
    }
    out += (out.size() > 1 ? "," : "") + ("\"" + f.name + "\":" + value);
  }
  std::printf("%s}\n", out.c_str());
}

/// A header line and one line of values.
void print_csv(const std::vector<field>& fields) {
  std::string header, row;
  for (const field& f : fields) {
    header += (header.empty() ? "" : ",") + f.name;
    std::string value = f.value;
    if (f.quoted && value.find_first_of(",\" ") != std::string::npos) {
      std::string q = "\"";
      for (char c : value) q += c == '"' ? std::string("\"\"") : std::string(1, c);
      value = q + "\"";
    }
    row += (row.empty() ? "" : ",") + value;
  }
  std::printf("%s\n%s\n", header.c_str(), row.c_str());
}

/// Where the cluster ran, in words.
std::string setup_of(const params& p, const outcome& out) {
  std::string s;
  switch (p.transport) {
    case transport_kind::local: s = "local_transport, 1 process"; break;
    case transport_kind::tcp: s = "tcp_transport over 127.0.0.1, 1 process"; break;
    case transport_kind::tcp_procs:
      s = "tcp_transport over 127.0.0.1, " + std::to_string(p.nodes) + " processes (followers:";
      for (long pid : out.follower_pids) s += " pid " + std::to_string(pid);
      s += ")";
      break;
  }
  if (p.storage == storage_kind::file)
    s += std::string(" + file_storage, fsync ") + name_of(on_off_names, p.fsync) + ", in " + out.scratch;
  else
    s += " + memory_storage";
  return s;
}

void print_text(const params& p, const outcome& out, const figures& f) {
  std::printf("replication_bench: %s\n", p.command_line.c_str());
  std::printf("  parameters      : nodes=%d payload=%zu B proposers=%zu warmup=%g s duration=%g s "
              "threads=%d client=%s heartbeat=%g ms election timeout=%g-%g ms (node 1)\n",
              p.nodes, p.payload, p.proposers, p.warmup, p.duration, p.threads,
              name_of(client_names, p.coroutine_client), p.heartbeat_ms, p.election_ms, 2 * p.election_ms);
  std::printf("  machine         : %u hardware threads, load average %.2f before the run\n", f.hw,
              out.load_before);
  std::printf("  setup           : %s, null state machine, leader node %llu in term %llu\n",
              setup_of(p, out).c_str(), static_cast<unsigned long long>(out.leader_id),
              static_cast<unsigned long long>(out.term));
  std::printf("  committed       : %llu entries in %.3f s\n", static_cast<unsigned long long>(out.entries),
              f.secs);
  std::printf("  throughput      : %.0f entries/s, %.2f MB/s of payload\n", f.rate, f.mbps);
  std::printf("  latency (us)    : p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n", f.p50_us,
              f.p99_us, f.p999_us, f.max_us, f.mean_us);
  std::printf("  cpu             : %.3f s in the window (%.2f cores, %.0f%% of the machine, %.0f%% of "
              "it in the kernel; leader's process %.3f s), %.3f s per million entries\n",
              out.cpu_seconds, f.cores, 100 * f.cores / f.hw, 100 * f.kernel_share, out.leader_cpu_seconds,
              f.cpu_per_m);
  if (out.allocations)
    std::printf("  allocations     : %.2f heap allocations per committed entry (%s)\n", f.allocs,
                f.processes > 1 ? "all processes" : "whole process");
  std::printf("  peak RSS        : %.1f MB%s; resident %.1f MB at the window's start, %.1f MB at its end\n",
              out.peak_rss_kb / 1024, f.processes > 1 ? " (summed over the processes)" : "",
              out.rss_start_kb / 1024, out.rss_end_kb / 1024);
  if (f.file)
    std::printf("  group commit    : leader %.1f entries per write round; %.0f fsyncs/s, %.1f entries "
                "per fsync (all nodes: %.1f)\n",
                f.per_round, f.fsyncs_per_s, f.per_fsync, f.all_per_fsync);
  std::printf("  leader changes  : %llu\n", static_cast<unsigned long long>(out.elections_after_start));
  if (out.failed)
    std::printf("  failed          : %llu proposals (first: %s)\n", static_cast<unsigned long long>(out.failed),
                out.first_error ? out.first_error->message().c_str() : "?");
  for (const auto& s : out.final_status) std::printf("  %s\n", s.c_str());
}

/// Prints the report on stdout: text, or --json, or --csv.
void report(const params& p, const outcome& out) {
  const figures f = figures_of(p, out);
  if (p.json)
    print_json(fields_of(p, out, f));
  else if (p.csv)
    print_csv(fields_of(p, out, f));
  else
    print_text(p, out, f);
}

/// --latency-cdf: the latency distribution, one line per histogram bucket.
void write_cdf(const params& p, const outcome& out) {
  std::FILE* f = std::fopen(p.latency_cdf.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "replication_bench: cannot write %s: %s\n", p.latency_cdf.c_str(), std::strerror(errno));
    return;
  }
  std::fprintf(f, "# %s\n# latency_us cumulative_fraction\n", p.command_line.c_str());
  out.latency.write_cdf(f);
  std::fclose(f);
}

// -------------------------------------------------------------------------------------------------
// The measuring process.

template <class Storage, class Transport>
class bench {
 public:
  using member = cluster_member<Storage, Transport>;
  using node_type = typename member::node_type;
  static constexpr bool is_tcp = std::is_same_v<Transport, raft::tcp_transport>;
  static constexpr bool is_file = std::is_same_v<Storage, raft::file_storage>;

  explicit bench(params p) : p_(std::move(p)), io_(p_.threads) {}

  int run() {
    out_.load_before = load_average();
    if constexpr (is_file) {
      scratch_.emplace(p_.dir);
      out_.scratch = scratch_->path().string();
    }
    // Followers in their own processes first: they inherit as little as possible.
    if (p_.transport == transport_kind::tcp_procs) spawn_followers();
    add_local_nodes();
    if constexpr (is_tcp) {
      if (!exchange_ports()) return 1;
    }
    for (auto& m : members_) m->node->start();  // before the io_context runs: allowed

    // Watchdog: exit non-zero instead of hanging if anything goes wrong.
    asio::steady_timer watchdog(io_, from_seconds(p_.warmup + p_.duration + 60));
    watchdog.async_wait([this](std::error_code ec) {
      if (ec) return;
      std::fprintf(stderr, "replication_bench: did not finish in time (stuck while %s), giving up\n",
                   stage_.load());
      print_status_if_single_threaded();
      abandon(1);
    });

    // Interrupted (Ctrl-C, kill): take the followers and the scratch directory along.
    asio::signal_set signals(io_, SIGINT, SIGTERM);
    signals.async_wait([this](std::error_code ec, int signo) {
      if (ec) return;
      std::fprintf(stderr, "replication_bench: signal %d, giving up\n", signo);
      followers_.kill_all();
      (void)followers_.reap(std::chrono::seconds(1));
      abandon(128 + signo);
    });

    int rc = 1;
    asio::co_spawn(
        asio::make_strand(io_),
        [&]() -> asio::awaitable<void> {
          rc = co_await control();
          watchdog.cancel();
          std::error_code ignored;
          signals.cancel(ignored);
        },
        [this](std::exception_ptr e) {
          if (!e) return;
          print_exception("replication_bench", e);
          abandon(1);
        });

    std::vector<std::thread> extra;
    for (int i = 1; i < p_.threads; ++i) extra.emplace_back([this] { io_.run(); });
    io_.run();
    for (auto& t : extra) t.join();
    if (!followers_.reap(10s)) {
      std::fprintf(stderr, "replication_bench: a follower process failed (exit statuses:");
      for (auto& f : followers_.followers()) std::fprintf(stderr, " %d", f->exit_status);
      std::fprintf(stderr, ")\n");
      rc = rc ? rc : 1;
    }
    if (rc == 0) report(p_, out_);
    if (rc == 0 && !p_.latency_cdf.empty()) write_cdf(p_, out_);
    if (rc == 0 && p_.check && !clean(out_)) rc = 3;
    return rc;
  }

 private:
  // --- setting the cluster up ------------------------------------------------------------------

  /// Node `id`'s directory with file storage (empty with memory storage).
  std::filesystem::path directory_of(raft::node_id id) const {
    if constexpr (is_file)
      return node_directory(scratch_->path(), id);
    else
      return {};
  }

  /// Nodes 2..N, one process each (--transport tcp-procs).
  void spawn_followers() {
    for (int i = 2; i <= p_.nodes; ++i) {
      const raft::node_id id{std::uint64_t(i)};
      followers_.spawn(id, follower_args(p_, id, is_file ? directory_of(id).string() : std::string("-")));
      out_.follower_pids.push_back(followers_.followers().back()->pid);
    }
  }

  /// The nodes of this process: all of them, or node 1 alone with --transport tcp-procs.
  void add_local_nodes() {
    const bool procs = p_.transport == transport_kind::tcp_procs;
    for (auto id : founders_of(p_).voters) {
      if (procs && id.value != 1) continue;
      const auto ex = p_.threads > 1 ? asio::any_io_executor(asio::make_strand(io_)) : io_.get_executor();
      members_.push_back(
          make_member<Storage>(p_, id, ex, directory_of(id), make_transport<Transport>(p_, id, ex, network_),
                               &leaders_elected_));
    }
  }

  /// Every process bound port 0; tells everyone what everyone got. False (after saying why) if a
  /// follower process did not start or is gone.
  bool exchange_ports() {
    port_map ports;
    for (auto& m : members_) ports[m->node->id()] = m->transport->local_endpoint().port();
    if (!raft_bench::exchange_ports(followers_, io_, ports, 30s)) return false;
    for (auto& m : members_) set_peer_ports(*m->transport, ports);
    return true;
  }

  /// Leaves at once (watchdog, signal, unexpected exception), taking the follower processes and
  /// the scratch directory along.
  [[noreturn]] void abandon(int status) {
    followers_.kill_all();
    if (scratch_) scratch_->remove();
    std::_Exit(status);
  }

  // --- sampling ----------------------------------------------------------------------------------

  /// This process's part of a cluster_sample; on the leader's executor.
  cluster_sample local_sample(const member* leader) const {
    const cpu_sample c = sample_cpu();
    cluster_sample s;
    s.cpu = c.cpu_seconds;
    s.sys = c.system_seconds;
    s.allocations = c.allocations;
    s.rss_kb = double(c.max_rss_kb);
    s.cur_rss_kb = double(c.rss_kb);
    for (auto& m : members_) {
      const storage_counts sc = counts_of(*m->storage);
      s.all_storage += sc;
      if (m.get() == leader) s.leader_storage = sc;
    }
    return s;
  }

  /// Adds the follower processes' answers to "sample" to `s`.
  asio::awaitable<void> add_followers(cluster_sample& s) {
    if (followers_.empty()) co_return;
    for (const std::string& line : co_await followers_.ask_all("sample")) add_sample_line(s, line);
  }

  /// The whole cluster now: this process on the leader's executor, then the follower processes.
  asio::awaitable<cluster_sample> sample_cluster(const member* leader) {
    cluster_sample s = co_await run_on(leader->ex, [this, leader] { return local_sample(leader); });
    co_await add_followers(s);
    co_return s;
  }

  // --- the run -----------------------------------------------------------------------------------

  asio::awaitable<int> control() {
    // 1. A leader. With a 1-2 s election timeout the first election takes 1-2 s.
    stage_ = "waiting for the first leader";
    member* leader = co_await wait_for_leader();
    if (!leader) {
      std::fprintf(stderr, "replication_bench: no leader within 30 s\n");
      co_return co_await give_up();
    }
    node_type* ln = leader->node.get();
    const auto elected_before = leaders_elected_.load();
    out_.leader_id = ln->id().value;
    out_.term = co_await run_on(leader->ex, [ln] { return ln->term().value; });

    // 2. Warm-up: start the proposers.
    stage_ = "warming up";
    co_await start_load(leader);
    co_await sleep_for(from_seconds(p_.warmup));

    // 3. The measurement window.
    co_await measure(leader);

    // 4. Drain: proposers stop re-proposing; wait for the outstanding ones.
    stage_ = "draining the outstanding proposals";
    if (!co_await drain(leader)) co_return co_await give_up();
    out_.entries = load_.completed;
    out_.latency = load_.latency;
    out_.failed = load_.failed;
    out_.first_error = load_.first_error;

    // Followers learn the last commit index with the next heartbeat; give them one.
    stage_ = "collecting the final status";
    co_await sleep_for(std::chrono::duration_cast<bench_clock::duration>(from_ms(2.5 * p_.heartbeat_ms)));
    for (auto& m : members_) {
      node_type* n = m->node.get();
      out_.final_status.push_back(co_await run_on(m->ex, [n] { return describe(n->status()); }));
    }
    const cluster_sample last = co_await sample_cluster(leader);
    if (!followers_.empty())
      for (const std::string& line : co_await followers_.ask_all("status"))
        out_.final_status.push_back(status_text(line));
    out_.elections_after_start = leaders_elected_.load() - elected_before + last.follower_elections;

    // 5. Stop every node cleanly.
    co_await shutdown();
    out_.peak_rss_kb = last.rss_kb;
    co_return 0;
  }

  /// The local node that leads, polled every 10 ms; nullptr if none within 30 s.
  asio::awaitable<member*> wait_for_leader() {
    const auto give_up_at = bench_clock::now() + 30s;
    while (bench_clock::now() <= give_up_at) {
      co_await sleep_for(10ms);
      member* leader = nullptr;
      for (auto& m : members_) {
        node_type* n = m->node.get();
        if (co_await run_on(m->ex, [n] { return n->role() == raft::role::leader; })) leader = m.get();
      }
      if (leader) co_return leader;
    }
    co_return nullptr;
  }

  /// Starts the proposers on the leader, each with the same --payload bytes.
  asio::awaitable<void> start_load(member* leader) {
    proposer_load<node_type>& load = load_;
    load.targets.assign(p_.proposers, leader->node.get());
    load.payload.resize(p_.payload);
    for (std::size_t i = 0; i < p_.payload; ++i) load.payload[i] = std::byte(i * 131 + 7);
    const bool coro = p_.coroutine_client;
    co_await run_on(leader->ex, [&load, coro] {
      load.start(coro);
      return 0;
    });
  }

  /// The window, opened and closed on the leader's executor; the follower processes are sampled
  /// right after each edge. Fills the usage figures of out_.
  asio::awaitable<void> measure(member* leader) {
    struct mark {
      bench_clock::time_point at;
      cluster_sample sample;
    };
    proposer_load<node_type>& load = load_;
    mark begin = co_await run_on(leader->ex, [this, &load, leader] {
      load.stage = phase::measure;
      RAFT_BENCH_PROFILE_ON();
      return mark{bench_clock::now(), local_sample(leader)};
    });
    const double leader_cpu_begin = begin.sample.cpu;
    stage_ = "sampling the follower processes (window start)";
    co_await add_followers(begin.sample);
    stage_ = "measuring";
    co_await sleep_through_window(begin.at, leader);
    mark end = co_await run_on(leader->ex, [this, &load, leader] {
      load.stage = phase::drain;
      const mark m{bench_clock::now(), local_sample(leader)};
      RAFT_BENCH_PROFILE_OFF();
      return m;
    });
    const double leader_cpu_end = end.sample.cpu;
    stage_ = "sampling the follower processes (window end)";
    co_await add_followers(end.sample);
    out_.window_seconds = std::chrono::duration<double>(end.at - begin.at).count();
    out_.cpu_seconds = end.sample.cpu - begin.sample.cpu;
    out_.system_seconds = end.sample.sys - begin.sample.sys;
    out_.leader_cpu_seconds = leader_cpu_end - leader_cpu_begin;
    if (begin.sample.allocations && end.sample.allocations)
      out_.allocations = *end.sample.allocations - *begin.sample.allocations;
    out_.leader_storage = end.sample.leader_storage - begin.sample.leader_storage;
    out_.rss_start_kb = begin.sample.cur_rss_kb;
    out_.rss_end_kb = end.sample.cur_rss_kb;
    out_.all_storage = end.sample.all_storage - begin.sample.all_storage;
  }

  /// Until --duration after `start`; with --rss-every, printing the resident memory on the way
  /// (stderr, so --json/--csv stay clean).
  asio::awaitable<void> sleep_through_window(bench_clock::time_point start, const member* leader) {
    if (p_.rss_every <= 0) {
      co_await sleep_for(from_seconds(p_.duration));
      co_return;
    }
    const auto window_end = start + from_seconds(p_.duration);
    const auto every = from_seconds(p_.rss_every);
    for (auto next = start + every; next < window_end; next += every) {
      co_await sleep_for(next - bench_clock::now());
      const cluster_sample now = co_await sample_cluster(leader);
      std::fprintf(stderr, "replication_bench: t=%.0f s  RSS %.1f MB  (peak %.1f MB)\n",
                   std::chrono::duration<double>(bench_clock::now() - start).count(), now.cur_rss_kb / 1024,
                   now.rss_kb / 1024);
    }
    co_await sleep_for(window_end - bench_clock::now());
  }

  /// Waits until no proposal is outstanding; false if some still are 20 s on.
  asio::awaitable<bool> drain(member* leader) {
    proposer_load<node_type>& load = load_;
    for (const auto drain_until = bench_clock::now() + 20s;;) {
      const std::size_t left = co_await run_on(leader->ex, [&load] { return load.outstanding; });
      if (left == 0) co_return true;
      if (bench_clock::now() > drain_until) {
        std::fprintf(stderr, "replication_bench: %zu proposals still outstanding 20 s after the window\n", left);
        co_return false;
      }
      co_await sleep_for(5ms);
    }
  }

  /// After a failure control() has reported: the nodes' state, a clean stop, status 1.
  asio::awaitable<int> give_up() {
    print_status_if_single_threaded();
    co_await shutdown();
    co_return 1;
  }

  asio::awaitable<void> shutdown() {
    stage_ = "stopping the nodes";
    for (auto& m : members_) co_await m->node->async_stop();
    stage_ = "stopping the follower processes";
    followers_.stop_all();
  }

  /// For diagnostics: every local node's state. Node state may be read only on the nodes' thread,
  /// which is the caller's only when one thread runs everything.
  void print_status_if_single_threaded() const {
    if (p_.threads != 1) return;
    for (auto& m : members_) {
      const raft::node_status st = m->node->status();
      std::fprintf(stderr, "replication_bench:   %s, durable %llu%s\n", describe(st).c_str(),
                   static_cast<unsigned long long>(st.durable_index.value),
                   m->node->stopping() ? ", stopping" : "");
    }
    std::fprintf(stderr, "replication_bench:   proposals outstanding %zu, failed %llu\n", load_.outstanding,
                 static_cast<unsigned long long>(load_.failed));
  }

  params p_;
  std::optional<scratch_dir> scratch_;  // first: removed after everything else is gone
  asio::io_context io_;
  raft::local_network network_;
  follower_group followers_;                      // reaped before io_ goes
  std::vector<std::unique_ptr<member>> members_;  // after network_ and io_: destroyed first
  std::atomic<std::uint64_t> leaders_elected_{0};
  std::atomic<const char*> stage_{"starting"};  // what control() is doing, for the watchdog
  proposer_load<node_type> load_;
  outcome out_;
};

template <class Storage, class Transport>
int run_bench(const params& p) {
  bench<Storage, Transport> b(p);
  return b.run();
}

template <class Storage>
int run_groups(const params& p) {
  if (p.transport == transport_kind::local) return groups_bench<raft::local_transport, Storage>(p).run();
  return groups_bench<raft::tcp_transport, Storage>(p).run();
}

template <class Storage>
int run_with_storage(const params& p) {
  if (p.follower) return follower_main<Storage>(p);
  if (p.transport == transport_kind::local) return run_bench<Storage, raft::local_transport>(p);
  return run_bench<Storage, raft::tcp_transport>(p);
}

}  // namespace

int main(int argc, char** argv) {
  params p = parse(argc, argv);
  if (!p.follower && !p.group_host) {
    ::signal(SIGPIPE, SIG_IGN);  // a follower that died must not kill us through its pipe
    // Nodes of another run on this machine never mix with ours: the handshake checks this.
    p.cluster_id = (std::uint64_t(::getpid()) << 20) ^
                   std::uint64_t(bench_clock::now().time_since_epoch().count() & 0xFFFFF);
  }
  try {
    if (p.group_host) return p.storage == storage_kind::shared_log ? group_host_main<raft::shared_log_group>(p)
                                                                   : group_host_main<raft::memory_storage>(p);
    if (p.groups > 0) return p.storage == storage_kind::shared_log ? run_groups<raft::shared_log_group>(p)
                                                                   : run_groups<raft::memory_storage>(p);
    return p.storage == storage_kind::file ? run_with_storage<raft::file_storage>(p)
                                           : run_with_storage<raft::memory_storage>(p);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "replication_bench: %s\n", e.what());
    return 1;
  }
}
