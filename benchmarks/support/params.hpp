// benchmarks/support/params.hpp - the benchmark's parameters as the command line sets them, the
// names its options take and print with, and the clock everything is measured with.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace raft_bench {

using bench_clock = std::chrono::steady_clock;

inline std::chrono::nanoseconds from_ms(double v) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double, std::milli>(v));
}
inline bench_clock::duration from_seconds(double v) {
  return std::chrono::duration_cast<bench_clock::duration>(std::chrono::duration<double>(v));
}

enum class transport_kind { local, tcp, tcp_procs };
enum class storage_kind { memory, file, shared_log };

/// A value an option can take, and its name on the command line and in the report.
template <class T>
struct named {
  const char* name;
  T value;
};
inline constexpr named<transport_kind> transport_names[] = {
    {"local", transport_kind::local}, {"tcp", transport_kind::tcp}, {"tcp-procs", transport_kind::tcp_procs}};
inline constexpr named<storage_kind> storage_names[] = {
    {"memory", storage_kind::memory}, {"file", storage_kind::file}, {"shared-log", storage_kind::shared_log}};
inline constexpr named<bool> client_names[] = {{"callback", false}, {"coroutine", true}};  // coroutine_client
inline constexpr named<bool> on_off_names[] = {{"off", false}, {"on", true}};

template <class T, std::size_t N>
const char* name_of(const named<T> (&names)[N], T value) {
  for (const auto& n : names)
    if (n.value == value) return n.name;
  return "?";
}
inline const char* to_string(transport_kind t) { return name_of(transport_names, t); }
inline const char* to_string(storage_kind s) { return name_of(storage_names, s); }

struct params {
  int nodes = 3;
  std::size_t payload = 64;
  std::size_t proposers = 256;
  std::size_t groups = 0;      // --groups: Raft groups per node (0: the single-group run)
  bool quiesce = false;        // --quiesce: options::quiesce, with the routers' liveness
  bool align_heartbeats = true;  // --align-heartbeats: options::align_heartbeats (--groups)
  double warmup = 1.0;
  double duration = 5.0;
  int threads = 1;
  double heartbeat_ms = 100;   // options.heartbeat_interval
  double election_ms = 1000;   // node 1's options.election_timeout_min; max is twice that
  bool json = false;
  bool csv = false;
  bool check = false;
  bool coroutine_client = false;
  transport_kind transport = transport_kind::local;
  storage_kind storage = storage_kind::memory;
  bool fsync = true;
  std::size_t prefill = std::size_t{1} << 20;  // shared_log_options::prefill_bytes (--storage shared-log)
  std::string dir;          // parent of the fresh temporary directory (file storage)
  std::string latency_cdf;  // where to write the latency distribution, if set
  std::uint64_t snapshot_every = 100'000;  // options.snapshot_entries (0: never, the log grows)
  double rss_every = 0;     // seconds between RSS lines during the window (0: none)
  std::string command_line;
  // Hidden: a follower process of --transport tcp-procs (a group host with --groups).
  bool follower = false;
  bool group_host = false;
  std::uint64_t id = 0;
  std::string node_dir;
  long parent_pid = 0;
  std::uint64_t cluster_id = 0;
};

}  // namespace raft_bench
