// benchmarks/replication_bench.cpp - committed entries per second through raft::node.
//
// The method:
//   - N voters (--nodes, 3 or 5), all bootstrapped as one cluster;
//   - P proposers (--proposers, default 256), each keeping exactly one proposal of --payload bytes
//     (default 64) outstanding on the leader: it proposes, waits until propose() completes (the
//     entry is committed and applied on the leader), then immediately proposes the next one;
//   - a warm-up (--warmup seconds, default 1), then a measurement window (--duration seconds,
//     default 5). Everything reported is measured inside the window only.
// Reported: committed entries/s, MB/s of payload, latency from propose() to completion
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
// --client callback|coroutine: how proposers wait (see `proposer_load` below). --json prints one
// JSON object instead of text, --csv a header line and one line of values. --latency-cdf FILE
// writes the latency distribution (one line per histogram bucket: upper bound in microseconds,
// cumulative fraction). --check exits with status 3 if the run was not clean (a leader change,
// a failed proposal, or nothing committed). --heartbeat-ms (default 100) and --election-ms
// (default 1000) set the node's timers.
//
// The state machine does nothing but count: the figures are the library's own cost, not a
// key-value store's.
//
// Allocations per entry are -1 in the JSON/CSV where they are not counted (not glibc, sanitizers).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/address_v4.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>

#include <raft/raft.hpp>
#include <raft/storage/file.hpp>
#include <raft/transport/tcp.hpp>

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define RAFT_BENCH_PROFILE_ON() CALLGRIND_START_INSTRUMENTATION
#define RAFT_BENCH_PROFILE_OFF() CALLGRIND_STOP_INSTRUMENTATION
#else
#define RAFT_BENCH_PROFILE_ON() ((void)0)
#define RAFT_BENCH_PROFILE_OFF() ((void)0)
#endif

// -------------------------------------------------------------------------------------------------
// Counting heap allocations. On glibc this program interposes malloc and friends (glibc supports
// replacing them, see "Replacing malloc" in its manual) and forwards to glibc's own allocator, so
// every allocation of the process is counted: operator new, Asio's handler memory (which calls
// aligned_alloc directly), everything. Each thread bumps its own slot with a plain load and store
// (no atomic read-modify-write on the hot path); allocation_count() sums the slots.
// Not under sanitizers (they replace malloc themselves), nor with -DRAFT_BENCH_NO_MALLOC_COUNT.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define RAFT_BENCH_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RAFT_BENCH_SANITIZED 1
#endif
#if defined(__GLIBC__) && !defined(RAFT_BENCH_SANITIZED) && !defined(RAFT_BENCH_NO_MALLOC_COUNT)
#define RAFT_BENCH_COUNT_MALLOC 1
#endif

namespace alloc_stats {
inline constexpr int max_threads = 128;
struct alignas(64) slot {
  std::atomic<std::uint64_t> count{0};
};
inline slot slots[max_threads];
inline std::atomic<int> next_slot{0};

inline void count_one() noexcept {
  thread_local int mine = next_slot.fetch_add(1, std::memory_order_relaxed) % max_threads;
  auto& c = slots[mine].count;
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}
/// Heap allocations so far, or nullopt where they cannot be counted.
inline std::optional<std::uint64_t> allocation_count() noexcept {
#if defined(RAFT_BENCH_COUNT_MALLOC)
  std::uint64_t total = 0;
  for (auto& s : slots) total += s.count.load(std::memory_order_relaxed);
  return total;
#else
  return std::nullopt;
#endif
}
}  // namespace alloc_stats

#if defined(RAFT_BENCH_COUNT_MALLOC)
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);

void* malloc(std::size_t size) {
  alloc_stats::count_one();
  return __libc_malloc(size);
}
void* calloc(std::size_t n, std::size_t size) {
  alloc_stats::count_one();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t size) {
  alloc_stats::count_one();
  return __libc_realloc(p, size);
}
void* memalign(std::size_t align, std::size_t size) {
  alloc_stats::count_one();
  return __libc_memalign(align, size);
}
void* aligned_alloc(std::size_t align, std::size_t size) {
  alloc_stats::count_one();
  return __libc_memalign(align, size);
}
int posix_memalign(void** out, std::size_t align, std::size_t size) {
  alloc_stats::count_one();
  void* p = __libc_memalign(align, size);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
void free(void* p) { __libc_free(p); }
}
#endif

namespace {

using namespace std::chrono_literals;
using bench_clock = std::chrono::steady_clock;

// -------------------------------------------------------------------------------------------------
// Parameters.

enum class transport_kind { local, tcp, tcp_procs };
enum class storage_kind { memory, file };

const char* to_string(transport_kind t) {
  switch (t) {
    case transport_kind::local: return "local";
    case transport_kind::tcp: return "tcp";
    case transport_kind::tcp_procs: return "tcp-procs";
  }
  return "?";
}
const char* to_string(storage_kind s) { return s == storage_kind::file ? "file" : "memory"; }

/// Followers' election timeouts are this many times node 1's, so that node 1 leads.
constexpr double follower_timeout_factor = 10;

struct params {
  int nodes = 3;
  std::size_t payload = 64;
  std::size_t proposers = 256;
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
  std::string dir;          // parent of the fresh temporary directory (file storage)
  std::string latency_cdf;  // where to write the latency distribution, if set
  std::uint64_t snapshot_every = 100'000;  // options.snapshot_entries (0: never, the log grows)
  double rss_every = 0;     // seconds between RSS lines during the window (0: none)
  std::string command_line;
  // Hidden: a follower process of --transport tcp-procs.
  bool follower = false;
  std::uint64_t id = 0;
  std::string node_dir;
  long parent_pid = 0;
  std::uint64_t cluster_id = 0;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "replication_bench: %s\n"
               "usage: replication_bench [--nodes 3|5] [--payload BYTES] [--proposers P]\n"
               "                         [--warmup SECONDS] [--duration SECONDS] [--threads K]\n"
               "                         [--transport local|tcp|tcp-procs]\n"
               "                         [--storage memory|file] [--fsync on|off] [--dir PATH]\n"
               "                         [--client callback|coroutine] [--heartbeat-ms MS]\n"
               "                         [--election-ms MS] [--json | --csv]\n"
               "                         [--latency-cdf FILE] [--check]\n"
               "                         [--snapshot-every ENTRIES] [--rss-every SECONDS]\n",
               why);
  std::exit(2);
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
      if (value != "callback" && value != "coroutine") usage("--client is callback or coroutine");
      p.coroutine_client = value == "coroutine";
    } else if (arg == "--transport") {
      if (value == "local") p.transport = transport_kind::local;
      else if (value == "tcp") p.transport = transport_kind::tcp;
      else if (value == "tcp-procs") p.transport = transport_kind::tcp_procs;
      else usage("--transport is local, tcp or tcp-procs");
    } else if (arg == "--storage") {
      if (value == "memory") p.storage = storage_kind::memory;
      else if (value == "file") p.storage = storage_kind::file;
      else usage("--storage is memory or file");
    } else if (arg == "--fsync") {
      if (value != "on" && value != "off") usage("--fsync is on or off");
      p.fsync = value == "on";
    } else if (arg == "--dir") {
      p.dir = value;
    } else if (arg == "--latency-cdf") {
      p.latency_cdf = value;
    } else if (arg == "--role") {
      if (value != "follower") usage("--role is follower (used by --transport tcp-procs)");
      p.follower = true;
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
  if (p.proposers < 1) usage("--proposers must be at least 1");
  if (p.threads < 1 || p.threads > 64) usage("--threads must be 1..64");
  if (p.duration <= 0) usage("--duration must be positive");
  if (p.json && p.csv) usage("--json and --csv exclude each other");
  if (p.heartbeat_ms <= 0 || p.heartbeat_ms >= p.election_ms)
    usage("--heartbeat-ms must be positive and below --election-ms");
  if (p.follower && (p.id < 2 || p.node_dir.empty() || p.parent_pid <= 0))
    usage("--role follower is started by --transport tcp-procs, not by hand");
  return p;
}

std::chrono::nanoseconds from_ms(double v) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double, std::milli>(v));
}
bench_clock::duration from_seconds(double v) {
  return std::chrono::duration_cast<bench_clock::duration>(std::chrono::duration<double>(v));
}

// -------------------------------------------------------------------------------------------------
// Latency histogram: log-linear buckets, 32 per power of two (relative error <= 1/32), exact
// below 32 ns. Fixed size, no allocation while recording.

class histogram {
 public:
  void record(std::uint64_t ns) noexcept {
    ++counts_[bucket(ns)];
    ++total_;
    sum_ += ns;
    max_ = std::max(max_, ns);
  }
  [[nodiscard]] std::uint64_t total() const noexcept { return total_; }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_; }
  [[nodiscard]] double mean() const noexcept { return total_ ? double(sum_) / double(total_) : 0; }

  /// The value below which a fraction `q` of the samples lie (bucket midpoint).
  [[nodiscard]] double quantile(double q) const noexcept {
    if (total_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(q * double(total_ - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < counts_.size(); ++b) {
      seen += counts_[b];
      if (seen >= rank) return std::min(double(lower(b)) + double(width(b)) / 2, double(max_));
    }
    return double(max_);
  }

  /// The distribution: for each non-empty bucket, its upper bound (microseconds) and the
  /// fraction of samples at or below it.
  void write_cdf(std::FILE* f) const {
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < counts_.size(); ++b) {
      if (!counts_[b]) continue;
      seen += counts_[b];
      const double upper = std::min(double(lower(b) + width(b)), double(max_));
      std::fprintf(f, "%.3f %.7f\n", upper / 1e3, double(seen) / double(total_));
    }
  }

 private:
  static constexpr unsigned sub_bits = 5;
  static constexpr std::uint64_t sub = 1u << sub_bits;

  static std::size_t bucket(std::uint64_t v) noexcept {
    if (v < sub) return v;
    const unsigned shift = 63u - unsigned(std::countl_zero(v)) - sub_bits;
    return ((shift + 1) << sub_bits) + ((v >> shift) & (sub - 1));
  }
  static std::uint64_t lower(std::size_t b) noexcept {
    if (b < sub) return b;
    const unsigned shift = unsigned(b >> sub_bits) - 1;
    return (sub + (b & (sub - 1))) << shift;
  }
  static std::uint64_t width(std::size_t b) noexcept {
    return b < sub ? 1 : std::uint64_t{1} << ((b >> sub_bits) - 1);
  }

  std::array<std::uint64_t, 64 * sub> counts_{};
  std::uint64_t total_ = 0, sum_ = 0, max_ = 0;
};

// -------------------------------------------------------------------------------------------------
// The nodes.

/// Applies nothing; counts. Its result (the entry's index) is what propose() completes with.
/// Its snapshot is the count (8 bytes), so snapshots cost the library, not the state machine.
struct null_state_machine {
  std::uint64_t applied = 0;
  std::uint64_t apply(raft::index_t index, std::span<const std::byte>) noexcept {
    ++applied;
    return index.value;
  }

  /// The count at the time of the call, read out once.
  struct source {
    std::array<std::byte, 8> bytes{};
    std::size_t offset = 0;
    std::size_t read(std::span<std::byte> buf) noexcept {
      const std::size_t n = std::min(buf.size(), bytes.size() - offset);
      std::memcpy(buf.data(), bytes.data() + offset, n);
      offset += n;
      return n;
    }
  };
  /// Collects the 8 bytes of a count; finish() makes it the state machine's.
  struct sink {
    null_state_machine* sm;
    std::array<std::byte, 8> bytes{};
    std::size_t received = 0;
    void write(std::span<const std::byte> b) {
      if (b.size() > bytes.size() - received) throw std::runtime_error("null_state_machine: snapshot too long");
      std::memcpy(bytes.data() + received, b.data(), b.size());
      received += b.size();
    }
    void finish() {
      if (received != bytes.size()) throw std::runtime_error("null_state_machine: snapshot too short");
      std::memcpy(&sm->applied, bytes.data(), bytes.size());
    }
  };
  source snapshot() const noexcept {
    source s;
    std::memcpy(s.bytes.data(), &applied, s.bytes.size());
    return s;
  }
  sink restore() noexcept { return sink{this}; }
};

using result_type = raft::result<std::uint64_t>;

template <class Storage>
std::unique_ptr<Storage> make_storage(const params& p, const std::filesystem::path& dir) {
  if constexpr (std::is_same_v<Storage, raft::file_storage>) {
    raft::file_storage_options o;
    o.fsync = p.fsync;
    return std::make_unique<raft::file_storage>(dir, std::move(o));
  } else {
    (void)p;
    (void)dir;
    return std::make_unique<Storage>();
  }
}

/// Log writes and syncs of a file_storage so far (zeros for other storage).
struct storage_counts {
  std::uint64_t entries = 0;
  std::uint64_t syncs = 0;
  std::uint64_t rounds = 0;  // writer-thread rounds: one write (and one sync) per group commit

  storage_counts& operator+=(const storage_counts& o) {
    entries += o.entries;
    syncs += o.syncs;
    rounds += o.rounds;
    return *this;
  }
  friend storage_counts operator-(const storage_counts& a, const storage_counts& b) {
    return {a.entries - b.entries, a.syncs - b.syncs, a.rounds - b.rounds};
  }
};
template <class Storage>
storage_counts counts_of(const Storage& s) {
  if constexpr (std::is_same_v<Storage, raft::file_storage>) {
    const auto st = s.stats();
    return {st.entries_written, st.syncs, st.write_rounds};
  } else {
    (void)s;
    return {};
  }
}

raft::tcp_transport_options transport_options(const params& p) {
  raft::tcp_transport_options o;
  o.cluster_id = p.cluster_id;
  o.logger.min_level = raft::log_level::warning;
  o.logger.sink = [](raft::log_level l, std::string_view text) {
    std::fprintf(stderr, "replication_bench: %s: %.*s\n", raft::to_string(l), int(text.size()), text.data());
  };
  return o;
}

/// Node options. Node 1 has the short election timeout; the others wait 10x longer, so node 1
/// wins the first election and no follower campaigns while it leads. Elections won are counted
/// in `leaders`: the node logs "node N is leader in term T" at info level, on its own executor
/// (possibly another thread, hence the atomic). Warnings and errors go to stderr.
raft::options node_options(const params& p, const raft::configuration& founders, raft::node_id id,
                           std::atomic<std::uint64_t>* leaders) {
  raft::options o;
  o.id = id;
  o.bootstrap = founders;
  const double election = id.value == 1 ? p.election_ms : p.election_ms * follower_timeout_factor;
  o.election_timeout_min = from_ms(election);
  o.election_timeout_max = from_ms(2 * election);
  o.heartbeat_interval = from_ms(p.heartbeat_ms);
  // Like a real deployment: a snapshot every --snapshot-every applied entries, then the log is
  // compacted behind it (keeping options' default trailing entries), so memory stays bounded.
  o.snapshot_entries = p.snapshot_every;
  o.logger.min_level = raft::log_level::info;
  o.logger.sink = [leaders](raft::log_level level, std::string_view text) {
    if (text.find(" is leader in term ") != std::string_view::npos) leaders->fetch_add(1);
    if (level >= raft::log_level::warning)
      std::fprintf(stderr, "replication_bench: %s: %.*s\n", raft::to_string(level), int(text.size()),
                   text.data());
  };
  return o;
}

raft::configuration founders_of(const params& p) {
  raft::configuration c;
  for (int i = 1; i <= p.nodes; ++i) c.voters.push_back(raft::node_id{std::uint64_t(i)});
  return c;
}

/// Runs `f()` on executor `ex` (a node's strand) and returns its value to the calling coroutine:
/// node state is read and written only on the node's executor.
template <class F>
asio::awaitable<std::invoke_result_t<F&>> run_on(asio::any_io_executor ex, F f) {
  using R = std::invoke_result_t<F&>;
  co_return co_await asio::co_spawn(
      ex, [f = std::move(f)]() mutable -> asio::awaitable<R> { co_return f(); }, asio::use_awaitable);
}

asio::awaitable<void> sleep_for(bench_clock::duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

// -------------------------------------------------------------------------------------------------
// The load: P proposers on the leader. Everything here is touched only on the leader's executor.
//
// Two ways to wait for a proposal, selectable with --client. Measured side by side (3 nodes, 64 B,
// 256 proposers, --threads 1, 2-core machine, twice each): callback 0.70-0.75 CPU s per million
// entries, coroutine 0.88-0.93 (about 20% more), so the callback is the default.
//   callback  - propose(bytes, handler): the handler re-proposes directly.
//   coroutine - one asio::awaitable per proposer looping `co_await leader.propose(bytes)`;
//               each completion also resumes a coroutine frame.

enum class phase { warmup, measure, drain };

template <class Node>
struct proposer_load {
  Node* leader = nullptr;
  std::vector<std::byte> payload;
  phase stage = phase::warmup;
  std::vector<bench_clock::time_point> started;  // per proposer: when its proposal was issued
  std::size_t outstanding = 0;
  std::uint64_t completed = 0;  // completed inside the measurement window
  std::uint64_t failed = 0;     // proposals that completed with an error (any phase)
  std::optional<raft::error> first_error;
  histogram latency;

  void finish(std::size_t who, const result_type& r, bench_clock::time_point now) {
    --outstanding;
    if (!r) {
      ++failed;
      if (!first_error) first_error = r.error();
      return;
    }
    if (stage == phase::measure) {
      ++completed;
      latency.record(static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - started[who]).count()));
    }
  }

  // --- callback client -------------------------------------------------------------------------
  struct handler {
    proposer_load* load;
    std::size_t who;
    void operator()(result_type r) const {
      const auto now = bench_clock::now();
      load->finish(who, r, now);
      if (r && load->stage != phase::drain) load->issue(who, now);  // failed proposers stop
    }
  };
  /// The next proposal starts at the instant the previous one completed: one clock read serves both.
  void issue(std::size_t who, bench_clock::time_point now) {
    ++outstanding;
    started[who] = now;
    leader->propose(payload, handler{this, who});
  }

  // --- coroutine client ------------------------------------------------------------------------
  asio::awaitable<void> run_coroutine(std::size_t who) {
    while (stage != phase::drain) {
      ++outstanding;
      started[who] = bench_clock::now();
      const result_type r = co_await leader->propose(payload);
      finish(who, r, bench_clock::now());
      if (!r) co_return;
    }
  }

  void start(std::size_t proposers, bool coroutine_client) {
    started.resize(proposers);
    for (std::size_t i = 0; i < proposers; ++i) {
      if (coroutine_client)
        asio::co_spawn(leader->get_executor(), run_coroutine(i), asio::detached);
      else
        issue(i, bench_clock::now());
    }
  }
};

// -------------------------------------------------------------------------------------------------
// Measurement.

struct cpu_sample {
  double cpu_seconds = 0;
  double system_seconds = 0;  // of cpu_seconds, in the kernel
  long max_rss_kb = 0;
  long rss_kb = 0;            // resident now (/proc/self/statm), -1 if unknown
  std::optional<std::uint64_t> allocations;
};

/// The process's resident set now, in KiB (Linux), or -1.
long current_rss_kb() {
  long pages = -1, resident = -1;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    std::fclose(f);
  }
  return resident < 0 ? -1 : resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

cpu_sample sample_cpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return {secs(u.ru_utime) + secs(u.ru_stime), secs(u.ru_stime), u.ru_maxrss, current_rss_kb(),
          alloc_stats::allocation_count()};
}

/// The 1-minute load average (Linux), or -1: on a shared machine other work skews the figures.
double load_average() {
  double load = -1;
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = -1;
    std::fclose(f);
  }
  return load;
}

/// "key=value key=value" (after a leading word) -> map. Values are numbers.
std::map<std::string, double> parse_fields(std::string_view line) {
  std::map<std::string, double> out;
  std::size_t at = 0;
  while (at < line.size()) {
    std::size_t end = line.find(' ', at);
    if (end == std::string_view::npos) end = line.size();
    const std::string_view word = line.substr(at, end - at);
    if (auto eq = word.find('='); eq != std::string_view::npos)
      out[std::string(word.substr(0, eq))] = std::strtod(std::string(word.substr(eq + 1)).c_str(), nullptr);
    at = end + 1;
  }
  return out;
}

// -------------------------------------------------------------------------------------------------
// Pipes and processes (--transport tcp-procs).

bool write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    text.remove_prefix(std::size_t(n));
  }
  return true;
}

/// Reads one line (without the newline) from `fd`, a byte at a time (so nothing after the line
/// is consumed), waiting at most `timeout`. Nullopt on end of file, error or timeout.
std::optional<std::string> read_line_blocking(int fd, std::chrono::milliseconds timeout) {
  const auto until = bench_clock::now() + timeout;
  std::string line;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - bench_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, int(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return std::nullopt;
    char c = 0;
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    if (c == '\n') return line;
    line += c;
  }
}

/// The follower processes of one run. Each is this program re-executed with `--role follower`,
/// its stdin and stdout connected to pipes: requests go down stdin one line each ("peers ...",
/// "sample", "status", "stop"), answers come back on stdout one line each. A follower exits when
/// told to stop or when its stdin reaches end of file, and is killed by the kernel if this
/// process dies first (PR_SET_PDEATHSIG). The destructor reaps every follower, killing those that
/// do not exit within a few seconds.
class follower_group {
 public:
  struct follower {
    raft::node_id id;
    pid_t pid = -1;
    int to = -1;    // its stdin
    int from = -1;  // its stdout
    std::uint16_t port = 0;
    std::unique_ptr<asio::posix::stream_descriptor> reader;  // `from`, once the run starts
    std::string buffer;
    int exit_status = -1;  // after reaping
  };

  follower_group() = default;
  follower_group(const follower_group&) = delete;
  follower_group& operator=(const follower_group&) = delete;
  ~follower_group() { reap(std::chrono::seconds(5)); }

  /// Forks and executes /proc/self/exe with `args` (argv[0] first). Call from the main thread:
  /// PR_SET_PDEATHSIG fires when the thread that forked exits.
  void spawn(raft::node_id id, const std::vector<std::string>& args) {
    int down[2], up[2];
    if (::pipe2(down, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    if (::pipe2(up, O_CLOEXEC) != 0) {
      const int err = errno;
      ::close(down[0]);
      ::close(down[1]);
      throw std::system_error(err, std::generic_category(), "pipe2");
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int err = errno;
      for (int fd : {down[0], down[1], up[0], up[1]}) ::close(fd);
      throw std::system_error(err, std::generic_category(), "fork");
    }
    if (pid == 0) {
      // The child: only async-signal-safe calls until execv.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
      if (::dup2(down[0], 0) < 0 || ::dup2(up[1], 1) < 0) ::_exit(127);
      ::fcntl(0, F_SETFD, 0);  // dup2 onto itself would keep FD_CLOEXEC
      ::fcntl(1, F_SETFD, 0);
      // Sockets (Asio opens them without SOCK_CLOEXEC) and everything else stay behind.
      if (::close_range(3, ~0u, 0) != 0)
        for (int fd = 3; fd < 4096; ++fd) ::close(fd);
      ::execv("/proc/self/exe", argv.data());
      ::_exit(127);
    }
    ::close(down[0]);
    ::close(up[1]);
    auto f = std::make_unique<follower>();
    f->id = id;
    f->pid = pid;
    f->to = down[1];
    f->from = up[0];
    followers_.push_back(std::move(f));
  }

  [[nodiscard]] std::vector<std::unique_ptr<follower>>& followers() noexcept { return followers_; }
  [[nodiscard]] bool empty() const noexcept { return followers_.empty(); }

  /// Sends `request` to every follower, then awaits one answer line from each (same order).
  asio::awaitable<std::vector<std::string>> ask_all(std::string_view request) {
    std::vector<std::string> answers;
    for (auto& f : followers_)
      if (!write_all(f->to, std::string(request) + "\n"))
        throw std::runtime_error("follower process " + std::to_string(f->id.value) + " is gone");
    for (auto& f : followers_) {
      std::error_code ec;
      const std::size_t n = co_await asio::async_read_until(
          *f->reader, asio::dynamic_buffer(f->buffer), '\n', asio::redirect_error(asio::use_awaitable, ec));
      if (ec)
        throw std::runtime_error("follower process " + std::to_string(f->id.value) +
                                 " did not answer '" + std::string(request) + "': " + ec.message());
      answers.push_back(f->buffer.substr(0, n - 1));
      f->buffer.erase(0, n);
    }
    co_return answers;
  }

  /// Tells every follower to stop (it stops its node and exits).
  void stop_all() {
    for (auto& f : followers_) {
      if (f->to >= 0) {
        (void)write_all(f->to, "stop\n");
        ::close(f->to);
        f->to = -1;
      }
      if (f->reader) {
        std::error_code ignored;
        f->reader->close(ignored);
      }
    }
  }

  /// Closes the pipes and waits up to `grace` for every follower to exit, then kills the rest.
  /// True if every follower exited by itself with status 0.
  bool reap(std::chrono::milliseconds grace) {
    for (auto& f : followers_) {
      if (f->to >= 0) ::close(f->to);
      f->to = -1;
      if (f->reader) {
        std::error_code ignored;
        f->reader->close(ignored);
        f->reader.reset();
      } else if (f->from >= 0) {
        ::close(f->from);
      }
      f->from = -1;
    }
    bool clean = true;
    const auto until = bench_clock::now() + grace;
    for (auto& f : followers_) {
      if (f->pid < 0) continue;
      int status = 0;
      pid_t r = 0;
      while ((r = ::waitpid(f->pid, &status, WNOHANG)) == 0 && bench_clock::now() < until)
        std::this_thread::sleep_for(10ms);
      if (r == 0) {
        std::fprintf(stderr, "replication_bench: follower process %llu (pid %d) did not exit; killing it\n",
                     static_cast<unsigned long long>(f->id.value), int(f->pid));
        ::kill(f->pid, SIGKILL);
        while ((r = ::waitpid(f->pid, &status, 0)) < 0 && errno == EINTR) {
        }
        clean = false;
      }
      if (r == f->pid) {
        f->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (f->exit_status != 0) clean = false;
      }
      f->pid = -1;
    }
    return clean;
  }

  /// For the watchdog: SIGKILL every follower now.
  void kill_all() noexcept {
    for (auto& f : followers_)
      if (f->pid > 0) ::kill(f->pid, SIGKILL);
  }

 private:
  std::vector<std::unique_ptr<follower>> followers_;
};

/// A fresh directory (mkdtemp) under `parent`, removed with everything in it on destruction.
class scratch_dir {
 public:
  explicit scratch_dir(const std::string& parent) {
    std::string base = parent;
    if (base.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      base = tmp && *tmp ? tmp : "/tmp";
    }
    std::filesystem::create_directories(base);
    std::string pattern = (std::filesystem::path(base) / "raft-bench-XXXXXX").string();
    if (!::mkdtemp(pattern.data()))
      throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
    path_ = pattern;
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  ~scratch_dir() { remove(); }
  void remove() noexcept {
    if (path_.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
    path_.clear();
  }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

std::filesystem::path node_directory(const std::filesystem::path& root, raft::node_id id) {
  return root / ("node-" + std::to_string(id.value));
}

// -------------------------------------------------------------------------------------------------
// The measuring process.

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
  histogram latency;
  std::uint64_t failed = 0;
  std::optional<raft::error> first_error;
  std::uint64_t leader_id = 0;
  std::uint64_t term = 0;
  std::uint64_t elections_after_start = 0;  // leaders elected after the first: must be 0
  std::vector<std::string> final_status;
  std::vector<long> follower_pids;
  std::string scratch;
};

template <class Storage, class Transport>
class bench {
 public:
  using node_type = raft::node<null_state_machine, Storage, Transport>;
  static constexpr bool is_tcp = std::is_same_v<Transport, raft::tcp_transport>;
  static constexpr bool is_file = std::is_same_v<Storage, raft::file_storage>;

  explicit bench(params p) : p_(std::move(p)), io_(p_.threads) {}

  int run() {
    out_.load_before = load_average();
    const raft::configuration founders = founders_of(p_);
    const bool procs = p_.transport == transport_kind::tcp_procs;
    if constexpr (is_file) {
      scratch_.emplace(p_.dir);
      out_.scratch = scratch_->path().string();
    }

    // Followers in their own processes first: they inherit as little as possible.
    if (procs) {
      for (int i = 2; i <= p_.nodes; ++i) {
        const raft::node_id id{std::uint64_t(i)};
        std::vector<std::string> args = {
            "replication_bench", "--role", "follower", "--id", std::to_string(i),
            "--nodes", std::to_string(p_.nodes), "--storage", to_string(p_.storage),
            "--fsync", p_.fsync ? "on" : "off", "--heartbeat-ms", std::to_string(p_.heartbeat_ms),
            "--election-ms", std::to_string(p_.election_ms), "--snapshot-every",
            std::to_string(p_.snapshot_every), "--cluster-id",
            std::to_string(p_.cluster_id), "--parent-pid", std::to_string(::getpid()),
            "--node-dir", is_file ? node_directory(scratch_->path(), id).string() : std::string("-")};
        followers_.spawn(id, args);
        out_.follower_pids.push_back(followers_.followers().back()->pid);
      }
    }

    // The nodes of this process.
    for (auto id : founders.voters) {
      if (procs && id.value != 1) continue;
      auto m = std::make_unique<member>();
      m->ex = p_.threads > 1 ? asio::any_io_executor(asio::make_strand(io_)) : io_.get_executor();
      m->storage = make_storage<Storage>(p_, is_file ? node_directory(scratch_->path(), id)
                                                     : std::filesystem::path());
      if constexpr (is_tcp) {
        m->transport = std::make_unique<raft::tcp_transport>(
            m->ex, id, asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0),
            std::map<raft::node_id, raft::tcp_address>{}, transport_options(p_));
      } else {
        m->transport = std::make_unique<raft::local_transport>(network_, id, m->ex);
      }
      m->node = std::make_unique<node_type>(m->ex, node_options(p_, founders, id, &leaders_elected_), m->sm,
                                            *m->storage, *m->transport);
      members_.push_back(std::move(m));
    }

    // Addresses: every process bound port 0; tell everyone what everyone got.
    if constexpr (is_tcp) {
      std::map<raft::node_id, std::uint16_t> ports;
      for (auto& m : members_) ports[m->node->id()] = m->transport->local_endpoint().port();
      for (auto& f : followers_.followers()) {
        auto line = read_line_blocking(f->from, 30s);
        if (!line || line->rfind("port ", 0) != 0) {
          std::fprintf(stderr, "replication_bench: follower process %llu did not start\n",
                       static_cast<unsigned long long>(f->id.value));
          return 1;
        }
        f->port = static_cast<std::uint16_t>(std::strtoul(line->c_str() + 5, nullptr, 10));
        ports[f->id] = f->port;
        f->reader = std::make_unique<asio::posix::stream_descriptor>(io_, f->from);
      }
      std::string peers = "peers";
      for (auto [id, port] : ports) peers += " " + std::to_string(id.value) + "=" + std::to_string(port);
      for (auto& f : followers_.followers())
        if (!write_all(f->to, peers + "\n")) {
          std::fprintf(stderr, "replication_bench: follower process %llu is gone\n",
                       static_cast<unsigned long long>(f->id.value));
          return 1;
        }
      for (auto& m : members_)
        for (auto [id, port] : ports)
          m->transport->set_peer_address(id, raft::tcp_address{"127.0.0.1", port});
    }

    for (auto& m : members_) m->node->start();  // before the io_context runs: allowed

    // Watchdog: exit non-zero instead of hanging if anything goes wrong.
    asio::steady_timer watchdog(io_, from_seconds(p_.warmup + p_.duration + 60));
    watchdog.async_wait([this](std::error_code ec) {
      if (ec) return;
      std::fprintf(stderr, "replication_bench: did not finish in time (stuck while %s), giving up\n",
                   stage_.load());
      if (p_.threads == 1) print_status();  // one thread: this handler runs on the nodes' thread
      followers_.kill_all();
      if (scratch_) scratch_->remove();
      std::_Exit(1);
    });

    // Interrupted (Ctrl-C, kill): take the followers and the scratch directory along.
    asio::signal_set signals(io_, SIGINT, SIGTERM);
    signals.async_wait([this](std::error_code ec, int signo) {
      if (ec) return;
      std::fprintf(stderr, "replication_bench: signal %d, giving up\n", signo);
      followers_.kill_all();
      (void)followers_.reap(std::chrono::seconds(1));
      if (scratch_) scratch_->remove();
      std::_Exit(128 + signo);
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
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            std::fprintf(stderr, "replication_bench: %s\n", ex.what());
          }
          followers_.kill_all();
          if (scratch_) scratch_->remove();
          std::_Exit(1);
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
    if (rc == 0) report();
    if (rc == 0 && !p_.latency_cdf.empty()) write_cdf();
    if (rc == 0 && p_.check && !clean()) rc = 3;
    return rc;
  }

 private:
  struct member {
    asio::any_io_executor ex;  // the node's executor: the io_context, or a strand of it
    null_state_machine sm;
    std::unique_ptr<Storage> storage;
    std::unique_ptr<Transport> transport;
    std::unique_ptr<node_type> node;
  };

  /// What the window needs from every process: CPU, allocations, RSS, storage counts.
  struct cluster_sample {
    double cpu = 0;
    double sys = 0;
    std::optional<std::uint64_t> allocations;
    double rss_kb = 0;      // peak (ru_maxrss)
    double cur_rss_kb = 0;  // resident now
    storage_counts leader_storage, all_storage;
    std::uint64_t follower_elections = 0;
  };

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
    for (const std::string& line : co_await followers_.ask_all("sample")) {
      auto f = parse_fields(line);
      s.cpu += f["cpu"];
      s.sys += f["sys"];
      if (s.allocations && f["allocs"] >= 0)
        *s.allocations += static_cast<std::uint64_t>(f["allocs"]);
      else
        s.allocations.reset();
      s.rss_kb += f["rss_kb"];
      s.cur_rss_kb += f["cur_rss_kb"];
      s.all_storage += storage_counts{static_cast<std::uint64_t>(f["entries"]),
                                      static_cast<std::uint64_t>(f["syncs"]),
                                      static_cast<std::uint64_t>(f["rounds"])};
      s.follower_elections += static_cast<std::uint64_t>(f["leaders"]);
      if (f["failed"] != 0) throw std::runtime_error("a follower node failed: " + line);
    }
  }

  asio::awaitable<int> control() {
    // 1. A leader. With a 1-2 s election timeout the first election takes 1-2 s.
    stage_ = "waiting for the first leader";
    member* leader = nullptr;
    const auto give_up = bench_clock::now() + 30s;
    while (!leader) {
      if (bench_clock::now() > give_up) {
        std::fprintf(stderr, "replication_bench: no leader within 30 s\n");
        if (p_.threads == 1) print_status();
        co_await shutdown();
        co_return 1;
      }
      co_await sleep_for(10ms);
      for (auto& m : members_) {
        node_type* n = m->node.get();
        if (co_await run_on(m->ex, [n] { return n->role() == raft::role::leader; })) leader = m.get();
      }
    }
    node_type* ln = leader->node.get();
    const auto elected_before = leaders_elected_.load();
    out_.leader_id = ln->id().value;
    out_.term = co_await run_on(leader->ex, [ln] { return ln->term().value; });

    // 2. Warm-up: start the proposers.
    stage_ = "warming up";
    proposer_load<node_type>& load = load_;
    load.leader = ln;
    load.payload.resize(p_.payload);
    for (std::size_t i = 0; i < p_.payload; ++i) load.payload[i] = std::byte(i * 131 + 7);
    const bool coro = p_.coroutine_client;
    const std::size_t proposers = p_.proposers;
    co_await run_on(leader->ex, [&load, proposers, coro] {
      load.start(proposers, coro);
      return 0;
    });
    co_await sleep_for(from_seconds(p_.warmup));

    // 3. The measurement window, opened and closed on the leader's executor; the follower
    //    processes are sampled right after.
    struct mark {
      bench_clock::time_point at;
      cluster_sample sample;
    };
    mark begin = co_await run_on(leader->ex, [this, &load, leader] {
      load.stage = phase::measure;
      RAFT_BENCH_PROFILE_ON();
      return mark{bench_clock::now(), local_sample(leader)};
    });
    const double leader_cpu_begin = begin.sample.cpu;
    stage_ = "sampling the follower processes (window start)";
    co_await add_followers(begin.sample);
    stage_ = "measuring";
    if (p_.rss_every > 0) {
      // Resident memory during the window (stderr, so --json/--csv stay clean).
      const auto window_end = begin.at + from_seconds(p_.duration);
      for (auto next = begin.at + from_seconds(p_.rss_every); next < window_end;
           next += from_seconds(p_.rss_every)) {
        co_await sleep_for(next - bench_clock::now());
        cluster_sample now = co_await run_on(leader->ex, [this, leader] { return local_sample(leader); });
        co_await add_followers(now);
        std::fprintf(stderr, "replication_bench: t=%.0f s  RSS %.1f MB  (peak %.1f MB)\n",
                     std::chrono::duration<double>(bench_clock::now() - begin.at).count(),
                     now.cur_rss_kb / 1024, now.rss_kb / 1024);
      }
      co_await sleep_for(window_end - bench_clock::now());
    } else {
      co_await sleep_for(from_seconds(p_.duration));
    }
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

    // 4. Drain: proposers stop re-proposing; wait for the outstanding ones.
    stage_ = "draining the outstanding proposals";
    for (const auto drain_until = bench_clock::now() + 20s;;) {
      const std::size_t left = co_await run_on(leader->ex, [&load] { return load.outstanding; });
      if (left == 0) break;
      if (bench_clock::now() > drain_until) {
        std::fprintf(stderr, "replication_bench: %zu proposals still outstanding 20 s after the window\n", left);
        if (p_.threads == 1) print_status();
        co_await shutdown();
        co_return 1;
      }
      co_await sleep_for(5ms);
    }
    out_.entries = load.completed;
    out_.latency = load.latency;
    out_.failed = load.failed;
    out_.first_error = load.first_error;

    // Followers learn the last commit index with the next heartbeat; give them one.
    stage_ = "collecting the final status";
    co_await sleep_for(std::chrono::duration_cast<bench_clock::duration>(from_ms(2.5 * p_.heartbeat_ms)));
    for (auto& m : members_) {
      node_type* n = m->node.get();
      out_.final_status.push_back(co_await run_on(m->ex, [n] { return describe(n->status()); }));
    }
    cluster_sample last = co_await run_on(leader->ex, [this, leader] { return local_sample(leader); });
    co_await add_followers(last);
    if (!followers_.empty())
      for (std::string& line : co_await followers_.ask_all("status")) out_.final_status.push_back(line.substr(7));
    out_.elections_after_start = leaders_elected_.load() - elected_before + last.follower_elections;

    // 5. Stop every node cleanly.
    co_await shutdown();
    out_.peak_rss_kb = last.rss_kb;
    co_return 0;
  }

  asio::awaitable<void> shutdown() {
    stage_ = "stopping the nodes";
    for (auto& m : members_) co_await m->node->stop();
    stage_ = "stopping the follower processes";
    followers_.stop_all();
  }

  /// For diagnostics, on the nodes' thread: every local node's state.
  void print_status() const {
    for (auto& m : members_) {
      const raft::node_status st = m->node->status();
      std::fprintf(stderr, "replication_bench:   %s, durable %llu%s\n", describe(st).c_str(),
                   static_cast<unsigned long long>(st.durable_index.value),
                   m->node->stopping() ? ", stopping" : "");
    }
    std::fprintf(stderr, "replication_bench:   proposals outstanding %zu, failed %llu\n", load_.outstanding,
                 static_cast<unsigned long long>(load_.failed));
  }

  static std::string describe(const raft::node_status& s) {
    char line[256];
    std::snprintf(line, sizeof line, "node %llu: %-8s term %llu, log %llu, commit %llu, applied %llu",
                  static_cast<unsigned long long>(s.id.value), raft::to_string(s.role),
                  static_cast<unsigned long long>(s.term.value),
                  static_cast<unsigned long long>(s.last_log_index.value),
                  static_cast<unsigned long long>(s.commit_index.value),
                  static_cast<unsigned long long>(s.applied_index.value));
    return line;
  }

  [[nodiscard]] bool clean() const {
    return out_.entries > 0 && out_.failed == 0 && out_.elections_after_start == 0;
  }

  std::string setup() const {
    std::string s;
    switch (p_.transport) {
      case transport_kind::local: s = "local_transport, 1 process"; break;
      case transport_kind::tcp: s = "tcp_transport over 127.0.0.1, 1 process"; break;
      case transport_kind::tcp_procs:
        s = "tcp_transport over 127.0.0.1, " + std::to_string(p_.nodes) + " processes (followers:";
        for (long pid : out_.follower_pids) s += " pid " + std::to_string(pid);
        s += ")";
        break;
    }
    if (is_file)
      s += std::string(" + file_storage, fsync ") + (p_.fsync ? "on" : "off") + ", in " + out_.scratch;
    else
      s += " + memory_storage";
    return s;
  }

  void write_cdf() const {
    std::FILE* f = std::fopen(p_.latency_cdf.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "replication_bench: cannot write %s: %s\n", p_.latency_cdf.c_str(),
                   std::strerror(errno));
      return;
    }
    std::fprintf(f, "# %s\n# latency_us cumulative_fraction\n", p_.command_line.c_str());
    out_.latency.write_cdf(f);
    std::fclose(f);
  }

  /// One reported figure: its name in the CSV header and the JSON object, and its text.
  struct field {
    std::string name;
    std::string value;
    bool quoted = false;  // a string in JSON
  };

  static std::string format(const char* fmt, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v);
    return buf;
  }

  void report() const {
    const double secs = out_.window_seconds;
    const double rate = secs > 0 ? double(out_.entries) / secs : 0;
    const double mbps = rate * double(p_.payload) / 1e6;
    const double cpu_per_m = out_.entries ? out_.cpu_seconds / (double(out_.entries) / 1e6) : 0;
    const double cores = secs > 0 ? out_.cpu_seconds / secs : 0;
    const double kernel_share = out_.cpu_seconds > 0 ? out_.system_seconds / out_.cpu_seconds : 0;
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    // -1: not counted on this platform.
    const double allocs = !out_.allocations ? -1
                          : out_.entries    ? double(*out_.allocations) / double(out_.entries)
                                            : 0;
    const auto ratio = [](std::uint64_t a, std::uint64_t b) { return b ? double(a) / double(b) : 0.0; };
    const storage_counts& ls = out_.leader_storage;
    const double per_fsync = ratio(ls.entries, ls.syncs);
    const double per_round = ratio(ls.entries, ls.rounds);
    const double fsyncs_per_s = secs > 0 ? double(ls.syncs) / secs : 0;
    const double all_per_fsync = ratio(out_.all_storage.entries, out_.all_storage.syncs);
    const auto us = [&](double q) { return out_.latency.quantile(q) / 1e3; };
    const char* client = p_.coroutine_client ? "coroutine" : "callback";
    const int processes = p_.transport == transport_kind::tcp_procs ? p_.nodes : 1;
    const char* fsync = !is_file ? "-" : p_.fsync ? "on" : "off";
    const auto u64 = [](std::uint64_t v) { return std::to_string(v); };

    const std::vector<field> fields = {
        {"transport", to_string(p_.transport), true},
        {"storage", to_string(p_.storage), true},
        {"fsync", fsync, true},
        {"processes", std::to_string(processes)},
        {"nodes", std::to_string(p_.nodes)},
        {"payload", std::to_string(p_.payload)},
        {"proposers", std::to_string(p_.proposers)},
        {"threads", std::to_string(p_.threads)},
        {"client", client, true},
        {"warmup_s", format("%g", p_.warmup)},
        {"duration_s", format("%g", p_.duration)},
        {"heartbeat_ms", format("%g", p_.heartbeat_ms)},
        {"election_ms", format("%g", p_.election_ms)},
        {"entries", u64(out_.entries)},
        {"window_s", format("%.3f", secs)},
        {"entries_per_s", format("%.0f", rate)},
        {"mb_per_s", format("%.2f", mbps)},
        {"p50_us", format("%.1f", us(0.5))},
        {"p99_us", format("%.1f", us(0.99))},
        {"p999_us", format("%.1f", us(0.999))},
        {"max_us", format("%.1f", double(out_.latency.max()) / 1e3)},
        {"mean_us", format("%.1f", out_.latency.mean() / 1e3)},
        {"cpu_s", format("%.3f", out_.cpu_seconds)},
        {"cpu_s_per_million", format("%.3f", cpu_per_m)},
        {"cpu_cores", format("%.3f", cores)},
        {"cpu_share", format("%.3f", cores / hw)},
        {"kernel_cpu_share", format("%.3f", kernel_share)},
        {"leader_process_cpu_s", format("%.3f", out_.leader_cpu_seconds)},
        {"allocations_per_entry", format("%.2f", allocs)},
        {"peak_rss_mb", format("%.1f", out_.peak_rss_kb / 1024)},
        {"rss_start_mb", format("%.1f", out_.rss_start_kb / 1024)},
        {"rss_end_mb", format("%.1f", out_.rss_end_kb / 1024)},
        {"snapshot_every", u64(p_.snapshot_every)},
        {"fsyncs_per_s", format("%.1f", fsyncs_per_s)},
        {"entries_per_fsync", format("%.1f", per_fsync)},
        {"entries_per_fsync_all_nodes", format("%.1f", all_per_fsync)},
        {"entries_per_write_round", format("%.1f", per_round)},
        {"leader", u64(out_.leader_id)},
        {"term", u64(out_.term)},
        {"leader_changes", u64(out_.elections_after_start)},
        {"failed_proposals", u64(out_.failed)},
        {"load_average", format("%.2f", out_.load_before)},
        {"hardware_threads", std::to_string(hw)},
        {"command", p_.command_line, true},
    };
    if (p_.json) {
      // Flat, except the latency figures, which keep their historical shape
      // "latency_us":{"p50":..,"p99":..,"p999":..,"max":..,"mean":..}.
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
      return;
    }
    if (p_.csv) {
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
      return;
    }
    std::printf("replication_bench: %s\n", p_.command_line.c_str());
    std::printf("  parameters      : nodes=%d payload=%zu B proposers=%zu warmup=%g s duration=%g s "
                "threads=%d client=%s heartbeat=%g ms election timeout=%g-%g ms (node 1)\n",
                p_.nodes, p_.payload, p_.proposers, p_.warmup, p_.duration, p_.threads, client,
                p_.heartbeat_ms, p_.election_ms, 2 * p_.election_ms);
    std::printf("  machine         : %u hardware threads, load average %.2f before the run\n", hw,
                out_.load_before);
    std::printf("  setup           : %s, null state machine, leader node %llu in term %llu\n",
                setup().c_str(), static_cast<unsigned long long>(out_.leader_id),
                static_cast<unsigned long long>(out_.term));
    std::printf("  committed       : %llu entries in %.3f s\n",
                static_cast<unsigned long long>(out_.entries), secs);
    std::printf("  throughput      : %.0f entries/s, %.2f MB/s of payload\n", rate, mbps);
    std::printf("  latency (us)    : p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
                us(0.5), us(0.99), us(0.999), double(out_.latency.max()) / 1e3,
                out_.latency.mean() / 1e3);
    std::printf("  cpu             : %.3f s in the window (%.2f cores, %.0f%% of the machine, %.0f%% of "
                "it in the kernel; leader's process %.3f s), %.3f s per million entries\n",
                out_.cpu_seconds, cores, 100 * cores / hw, 100 * kernel_share, out_.leader_cpu_seconds,
                cpu_per_m);
    if (out_.allocations)
      std::printf("  allocations     : %.2f heap allocations per committed entry (%s)\n", allocs,
                  processes > 1 ? "all processes" : "whole process");
    std::printf("  peak RSS        : %.1f MB%s; resident %.1f MB at the window's start, %.1f MB at its end\n",
                out_.peak_rss_kb / 1024, processes > 1 ? " (summed over the processes)" : "",
                out_.rss_start_kb / 1024, out_.rss_end_kb / 1024);
    if (is_file)
      std::printf("  group commit    : leader %.1f entries per write round; %.0f fsyncs/s, %.1f entries "
                  "per fsync (all nodes: %.1f)\n",
                  per_round, fsyncs_per_s, per_fsync, all_per_fsync);
    std::printf("  leader changes  : %llu\n",
                static_cast<unsigned long long>(out_.elections_after_start));
    if (out_.failed)
      std::printf("  failed          : %llu proposals (first: %s)\n",
                  static_cast<unsigned long long>(out_.failed),
                  out_.first_error ? out_.first_error->message().c_str() : "?");
    for (const auto& s : out_.final_status) std::printf("  %s\n", s.c_str());
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

// -------------------------------------------------------------------------------------------------
// A follower process (--transport tcp-procs): one node, driven by its parent over stdin/stdout.

template <class Storage>
int follower_main(const params& p) {
  using node_type = raft::node<null_state_machine, Storage, raft::tcp_transport>;
  if (::getppid() != static_cast<pid_t>(p.parent_pid)) return 1;  // orphaned already
  ::signal(SIGPIPE, SIG_IGN);
  const raft::node_id id{p.id};
  const raft::configuration founders = founders_of(p);
  asio::io_context io(1);
  null_state_machine sm;
  std::atomic<std::uint64_t> leaders{0};
  auto storage = make_storage<Storage>(p, p.node_dir);
  raft::tcp_transport transport(io.get_executor(), id,
                                asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0),
                                std::map<raft::node_id, raft::tcp_address>{}, transport_options(p));
  node_type node(io.get_executor(), node_options(p, founders, id, &leaders), sm, *storage, transport);
  if (!write_all(1, "port " + std::to_string(transport.local_endpoint().port()) + "\n")) return 1;

  asio::posix::stream_descriptor in(io, ::dup(0));
  int rc = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        std::string buffer;
        bool started = false;
        for (;;) {
          std::error_code ec;
          const std::size_t n = co_await asio::async_read_until(
              in, asio::dynamic_buffer(buffer), '\n', asio::redirect_error(asio::use_awaitable, ec));
          if (ec) break;  // end of file: the parent is gone or done
          const std::string line = buffer.substr(0, n - 1);
          buffer.erase(0, n);
          if (line.rfind("peers ", 0) == 0) {
            for (const auto& [peer, port] : parse_fields(line))
              transport.set_peer_address(raft::node_id{std::stoull(peer)},
                                         raft::tcp_address{"127.0.0.1", static_cast<std::uint16_t>(port)});
            node.start();
            started = true;
          } else if (line == "sample") {
            const cpu_sample c = sample_cpu();
            const storage_counts sc = counts_of(*storage);
            char reply[256];
            std::snprintf(reply, sizeof reply,
                          "sample cpu=%.6f sys=%.6f allocs=%lld rss_kb=%ld cur_rss_kb=%ld entries=%llu "
                          "syncs=%llu rounds=%llu leaders=%llu failed=%d\n",
                          c.cpu_seconds, c.system_seconds,
                          c.allocations ? static_cast<long long>(*c.allocations) : -1LL, c.max_rss_kb, c.rss_kb,
                          static_cast<unsigned long long>(sc.entries),
                          static_cast<unsigned long long>(sc.syncs),
                          static_cast<unsigned long long>(sc.rounds),
                          static_cast<unsigned long long>(leaders.load()), node.failure() ? 1 : 0);
            if (!write_all(1, reply)) break;
          } else if (line == "status") {
            const raft::node_status s = node.status();
            char reply[256];
            std::snprintf(reply, sizeof reply,
                          "status node %llu: %-8s term %llu, log %llu, commit %llu, applied %llu (pid %d)\n",
                          static_cast<unsigned long long>(s.id.value), raft::to_string(s.role),
                          static_cast<unsigned long long>(s.term.value),
                          static_cast<unsigned long long>(s.last_log_index.value),
                          static_cast<unsigned long long>(s.commit_index.value),
                          static_cast<unsigned long long>(s.applied_index.value), int(::getpid()));
            if (!write_all(1, reply)) break;
          } else if (line == "stop") {
            break;
          }
        }
        if (started) {
          co_await node.stop();
          if (node.failure()) rc = 1;
        } else {
          transport.close();
        }
        std::error_code ignored;
        in.close(ignored);
      },
      [](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::fprintf(stderr, "replication_bench (follower): %s\n", ex.what());
        }
        std::_Exit(1);
      });
  io.run();
  return rc;
}

template <class Storage, class Transport>
int run_bench(const params& p) {
  bench<Storage, Transport> b(p);
  return b.run();
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
  if (!p.follower) {
    ::signal(SIGPIPE, SIG_IGN);  // a follower that died must not kill us through its pipe
    // Nodes of another run on this machine never mix with ours: the handshake checks this.
    p.cluster_id = (std::uint64_t(::getpid()) << 20) ^
                   std::uint64_t(bench_clock::now().time_since_epoch().count() & 0xFFFFF);
  }
  try {
    return p.storage == storage_kind::file ? run_with_storage<raft::file_storage>(p)
                                           : run_with_storage<raft::memory_storage>(p);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "replication_bench: %s\n", e.what());
    return 1;
  }
}
