// benchmarks/replication_bench.cpp - committed entries per second through raft::node.
//
// The method (design brief §5, the one the peer figures were measured with):
//   - N voters (--nodes, 3 or 5) in one process: raft::local_transport + raft::memory_storage
//     (no fsync), all bootstrapped as one cluster;
//   - P proposers (--proposers, default 256), each keeping exactly one proposal of --payload bytes
//     (default 64) outstanding on the leader: it proposes, waits until propose() completes (the
//     entry is committed and applied on the leader), then immediately proposes the next one;
//   - a warm-up (--warmup seconds, default 1), then a measurement window (--duration seconds,
//     default 5). Everything reported is measured inside the window only.
// Reported: committed entries/s, MB/s of payload, latency from propose() to completion
// (p50/p99/p99.9/max, log-linear histogram, <= 3% bucket error), CPU seconds per million entries
// (getrusage, all threads), heap allocations per entry (on glibc this program interposes malloc to
// count them), peak RSS (ru_maxrss), and leader elections during the run (must be 0 once the
// first leader is up; a nonzero count makes the figures meaningless).
//
// Profiling: under `valgrind --tool=callgrind --instr-atstart=no` only the measurement window is
// instrumented (the program toggles it through <valgrind/callgrind.h> when that header exists).
// Valgrind slows everything down ~50x; use e.g. --warmup 0.2 --duration 1.
//
// --threads 1 (default): every node on one io_context run by one thread. --threads k: the
// io_context is run by k threads and each node lives on its own strand.
// --client callback|coroutine: how proposers wait (see `proposer_load` below). --json prints one
// JSON object instead of text. --heartbeat-ms (default 100) and --election-ms (default 1000; the
// timeout is drawn from [ms, 2 ms)) set the node's timers.
//
// The state machine does nothing but count: the figures are the library's own cost, not a
// key-value store's. The election timeout is generous (1-2 s) so that a busy leader never loses
// leadership to a follower whose timer fired while it waited for the CPU; the first election
// therefore takes 1-2 s before the warm-up starts.
//
// Allocations per entry are -1 in the JSON where they are not counted (not glibc, sanitizers).
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>

#include <raft/raft.hpp>

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

struct params {
  int nodes = 3;
  std::size_t payload = 64;
  std::size_t proposers = 256;
  double warmup = 1.0;
  double duration = 5.0;
  int threads = 1;
  double heartbeat_ms = 100;   // options.heartbeat_interval
  double election_ms = 1000;   // options.election_timeout_min; max is twice that
  bool json = false;
  bool coroutine_client = false;
  std::string command_line;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "replication_bench: %s\n"
               "usage: replication_bench [--nodes 3|5] [--payload BYTES] [--proposers P]\n"
               "                         [--warmup SECONDS] [--duration SECONDS] [--threads K]\n"
               "                         [--client callback|coroutine] [--heartbeat-ms MS]\n"
               "                         [--election-ms MS] [--json]\n",
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
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
    }
    if (arg == "--json") {
      p.json = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") usage("help");
    if (value.empty()) {
      if (i + 1 >= argc) usage(("missing value for " + arg).c_str());
      value = argv[++i];
    }
    char* end = nullptr;
    const double number = std::strtod(value.c_str(), &end);
    const bool numeric = end && *end == '\0' && number >= 0;
    if (arg == "--client") {
      if (value != "callback" && value != "coroutine") usage("--client is callback or coroutine");
      p.coroutine_client = value == "coroutine";
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
    } else {
      usage(("unknown option " + arg).c_str());
    }
  }
  if (p.nodes < 1 || p.nodes > 9) usage("--nodes must be 1..9");
  if (p.proposers < 1) usage("--proposers must be at least 1");
  if (p.threads < 1 || p.threads > 64) usage("--threads must be 1..64");
  if (p.duration <= 0) usage("--duration must be positive");
  if (p.heartbeat_ms <= 0 || p.heartbeat_ms >= p.election_ms)
    usage("--heartbeat-ms must be positive and below --election-ms");
  return p;
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
// The cluster.

/// Applies nothing; counts. Its result (the entry's index) is what propose() completes with.
struct null_state_machine {
  std::uint64_t applied = 0;
  std::uint64_t apply(raft::index_t index, std::span<const std::byte>) noexcept {
    ++applied;
    return index.value;
  }
};

using node_type = raft::node<null_state_machine, raft::memory_storage, raft::local_transport>;
using result_type = raft::result<std::uint64_t>;

struct member {
  member(asio::any_io_executor executor, raft::local_network& network, raft::options o)
      : ex(std::move(executor)), transport(network, o.id, ex) {
    node = std::make_unique<node_type>(ex, std::move(o), sm, storage, transport);
  }
  asio::any_io_executor ex;  // the node's executor: the io_context, or a strand of it
  null_state_machine sm;
  raft::memory_storage storage;
  raft::local_transport transport;
  std::unique_ptr<node_type> node;
};

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

struct proposer_load {
  node_type* leader = nullptr;
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
      if (r && load->stage != phase::drain) load->issue(who);  // failed proposers stop
    }
  };
  void issue(std::size_t who) {
    ++outstanding;
    started[who] = bench_clock::now();
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
        issue(i);
    }
  }
};

// -------------------------------------------------------------------------------------------------
// Measurement.

struct cpu_sample {
  double cpu_seconds;
  long max_rss_kb;
  std::optional<std::uint64_t> allocations;
};

cpu_sample sample_cpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return {secs(u.ru_utime) + secs(u.ru_stime), u.ru_maxrss, alloc_stats::allocation_count()};
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

struct outcome {
  double load_before = -1;
  std::uint64_t entries = 0;
  double window_seconds = 0;
  double cpu_seconds = 0;
  std::optional<std::uint64_t> allocations;
  long peak_rss_kb = 0;
  histogram latency;
  std::uint64_t failed = 0;
  std::optional<raft::error> first_error;
  std::uint64_t leader_id = 0;
  std::uint64_t term = 0;
  std::uint64_t elections_after_start = 0;  // leaders elected after the first: must be 0
  std::vector<raft::node_status> final_status;
};

class bench {
 public:
  explicit bench(params p) : p_(std::move(p)), io_(p_.threads) {
    raft::configuration founders;
    for (int i = 1; i <= p_.nodes; ++i) founders.voters.push_back(raft::node_id{std::uint64_t(i)});
    for (auto id : founders.voters) {
      raft::options o;
      o.id = id;
      o.bootstrap = founders;
      const auto ms = [](double v) {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::chrono::duration<double, std::milli>(v));
      };
      o.election_timeout_min = ms(p_.election_ms);
      o.election_timeout_max = ms(2 * p_.election_ms);
      o.heartbeat_interval = ms(p_.heartbeat_ms);
      // Count elections won: the node logs "node N is leader in term T" at info level, on its
      // own executor (possibly another thread, hence the atomic).
      o.logger.min_level = raft::log_level::info;
      o.logger.sink = [this](raft::log_level, std::string_view text) {
        if (text.find(" is leader in term ") != std::string_view::npos) leaders_elected_.fetch_add(1);
      };
      asio::any_io_executor ex = io_.get_executor();
      if (p_.threads > 1) ex = asio::make_strand(io_);
      members_.push_back(std::make_unique<member>(ex, network_, std::move(o)));
    }
    load_.payload.resize(p_.payload);
    for (std::size_t i = 0; i < p_.payload; ++i) load_.payload[i] = std::byte(i * 131 + 7);
  }

  int run() {
    out_.load_before = load_average();
    for (auto& m : members_) m->node->start();  // before the io_context runs: allowed

    // Watchdog: exit non-zero instead of hanging if anything goes wrong.
    asio::steady_timer watchdog(io_, std::chrono::duration_cast<bench_clock::duration>(
                                         std::chrono::duration<double>(p_.warmup + p_.duration + 60)));
    watchdog.async_wait([](std::error_code ec) {
      if (ec) return;
      std::fprintf(stderr, "replication_bench: did not finish in time, giving up\n");
      std::_Exit(1);
    });

    int rc = 1;
    asio::co_spawn(
        asio::make_strand(io_),
        [&]() -> asio::awaitable<void> {
          rc = co_await control();
          watchdog.cancel();
        },
        [](std::exception_ptr e) {
          if (!e) return;
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            std::fprintf(stderr, "replication_bench: %s\n", ex.what());
          }
          std::_Exit(1);
        });

    std::vector<std::thread> extra;
    for (int i = 1; i < p_.threads; ++i) extra.emplace_back([this] { io_.run(); });
    io_.run();
    for (auto& t : extra) t.join();
    if (rc == 0) report();
    return rc;
  }

 private:
  asio::awaitable<int> control() {
    // 1. A leader. With a 1-2 s election timeout the first election takes 1-2 s.
    member* leader = nullptr;
    const auto give_up = bench_clock::now() + 30s;
    while (!leader) {
      if (bench_clock::now() > give_up) {
        std::fprintf(stderr, "replication_bench: no leader within 30 s\n");
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
    proposer_load& load = load_;
    load.leader = ln;
    const bool coro = p_.coroutine_client;
    const std::size_t proposers = p_.proposers;
    co_await run_on(leader->ex, [&load, proposers, coro] {
      load.start(proposers, coro);
      return 0;
    });
    co_await sleep_for(std::chrono::duration_cast<bench_clock::duration>(
        std::chrono::duration<double>(p_.warmup)));

    // 3. The measurement window, opened and closed on the leader's executor.
    struct mark {
      bench_clock::time_point at;
      cpu_sample cpu;
    };
    const mark begin = co_await run_on(leader->ex, [&load] {
      load.stage = phase::measure;
      RAFT_BENCH_PROFILE_ON();
      return mark{bench_clock::now(), sample_cpu()};
    });
    co_await sleep_for(std::chrono::duration_cast<bench_clock::duration>(
        std::chrono::duration<double>(p_.duration)));
    const mark end = co_await run_on(leader->ex, [&load] {
      load.stage = phase::drain;
      const mark m{bench_clock::now(), sample_cpu()};
      RAFT_BENCH_PROFILE_OFF();
      return m;
    });
    out_.window_seconds = std::chrono::duration<double>(end.at - begin.at).count();
    out_.cpu_seconds = end.cpu.cpu_seconds - begin.cpu.cpu_seconds;
    if (begin.cpu.allocations && end.cpu.allocations)
      out_.allocations = *end.cpu.allocations - *begin.cpu.allocations;

    // 4. Drain: proposers stop re-proposing; wait for the outstanding ones.
    for (;;) {
      if (co_await run_on(leader->ex, [&load] { return load.outstanding; }) == 0) break;
      co_await sleep_for(5ms);
    }
    out_.entries = load.completed;
    out_.latency = load.latency;
    out_.failed = load.failed;
    out_.first_error = load.first_error;
    out_.elections_after_start = leaders_elected_.load() - elected_before;

    // Followers learn the last commit index with the next heartbeat; give them one.
    co_await sleep_for(std::chrono::milliseconds(250));
    for (auto& m : members_) {
      node_type* n = m->node.get();
      out_.final_status.push_back(co_await run_on(m->ex, [n] { return n->status(); }));
    }

    // 5. Stop every node cleanly.
    for (auto& m : members_) co_await m->node->stop();
    out_.peak_rss_kb = sample_cpu().max_rss_kb;
    co_return 0;
  }

  void report() const {
    const double secs = out_.window_seconds;
    const double rate = secs > 0 ? double(out_.entries) / secs : 0;
    const double mbps = rate * double(p_.payload) / 1e6;
    const double cpu_per_m = out_.entries ? out_.cpu_seconds / (double(out_.entries) / 1e6) : 0;
    // -1: not counted on this platform.
    const double allocs = !out_.allocations ? -1
                          : out_.entries    ? double(*out_.allocations) / double(out_.entries)
                                            : 0;
    const auto us = [&](double q) { return out_.latency.quantile(q) / 1e3; };
    const char* client = p_.coroutine_client ? "coroutine" : "callback";
    if (p_.json) {
      std::string cmd;
      for (char c : p_.command_line) {
        if (c == '"' || c == '\\') cmd += '\\';
        cmd += c;
      }
      std::printf(
          "{\"command\":\"%s\",\"nodes\":%d,\"payload\":%zu,\"proposers\":%zu,"
          "\"warmup_s\":%g,\"duration_s\":%g,\"threads\":%d,\"client\":\"%s\","
          "\"heartbeat_ms\":%g,\"election_ms\":%g,\"entries\":%llu,\"window_s\":%.3f,"
          "\"entries_per_s\":%.0f,\"mb_per_s\":%.2f,\"latency_us\":{\"p50\":%.1f,"
          "\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f},\"cpu_s\":%.3f,"
          "\"cpu_s_per_million\":%.3f,\"allocations_per_entry\":%.2f,\"peak_rss_mb\":%.1f,"
          "\"leader\":%llu,\"term\":%llu,\"leader_changes\":%llu,\"failed_proposals\":%llu,"
          "\"load_average\":%.2f,\"hardware_threads\":%u}\n",
          cmd.c_str(), p_.nodes, p_.payload, p_.proposers, p_.warmup, p_.duration, p_.threads,
          client, p_.heartbeat_ms, p_.election_ms, static_cast<unsigned long long>(out_.entries),
          secs, rate, mbps, us(0.5), us(0.99), us(0.999), double(out_.latency.max()) / 1e3,
          out_.latency.mean() / 1e3, out_.cpu_seconds, cpu_per_m, allocs,
          double(out_.peak_rss_kb) / 1024, static_cast<unsigned long long>(out_.leader_id),
          static_cast<unsigned long long>(out_.term),
          static_cast<unsigned long long>(out_.elections_after_start),
          static_cast<unsigned long long>(out_.failed), out_.load_before,
          std::thread::hardware_concurrency());
      return;
    }
    std::printf("replication_bench: %s\n", p_.command_line.c_str());
    std::printf("  parameters      : nodes=%d payload=%zu B proposers=%zu warmup=%g s duration=%g s "
                "threads=%d client=%s heartbeat=%g ms election timeout=%g-%g ms\n",
                p_.nodes, p_.payload, p_.proposers, p_.warmup, p_.duration, p_.threads, client,
                p_.heartbeat_ms, p_.election_ms, 2 * p_.election_ms);
    std::printf("  machine         : %u hardware threads, load average %.2f before the run\n",
                std::thread::hardware_concurrency(), out_.load_before);
    std::printf("  setup           : local_transport + memory_storage, null state machine, "
                "leader node %llu in term %llu\n",
                static_cast<unsigned long long>(out_.leader_id),
                static_cast<unsigned long long>(out_.term));
    std::printf("  committed       : %llu entries in %.3f s\n",
                static_cast<unsigned long long>(out_.entries), secs);
    std::printf("  throughput      : %.0f entries/s, %.2f MB/s of payload\n", rate, mbps);
    std::printf("  latency (us)    : p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
                us(0.5), us(0.99), us(0.999), double(out_.latency.max()) / 1e3,
                out_.latency.mean() / 1e3);
    std::printf("  cpu             : %.3f s in the window, %.3f s per million entries\n",
                out_.cpu_seconds, cpu_per_m);
    if (out_.allocations)
      std::printf("  allocations     : %.2f heap allocations per committed entry (whole process)\n",
                  allocs);
    std::printf("  peak RSS        : %.1f MB\n", double(out_.peak_rss_kb) / 1024);
    std::printf("  leader changes  : %llu\n",
                static_cast<unsigned long long>(out_.elections_after_start));
    if (out_.failed)
      std::printf("  failed          : %llu proposals (first: %s)\n",
                  static_cast<unsigned long long>(out_.failed),
                  out_.first_error ? out_.first_error->message().c_str() : "?");
    for (const auto& s : out_.final_status)
      std::printf("  node %llu        : %-8s term %llu, log %llu, commit %llu, applied %llu\n",
                  static_cast<unsigned long long>(s.id.value), raft::to_string(s.role),
                  static_cast<unsigned long long>(s.term.value),
                  static_cast<unsigned long long>(s.last_log_index.value),
                  static_cast<unsigned long long>(s.commit_index.value),
                  static_cast<unsigned long long>(s.applied_index.value));
  }

  params p_;
  asio::io_context io_;
  raft::local_network network_;
  std::vector<std::unique_ptr<member>> members_;  // after network_ and io_: destroyed first
  std::atomic<std::uint64_t> leaders_elected_{0};
  proposer_load load_;
  outcome out_;
};

}  // namespace

int main(int argc, char** argv) {
  bench b(parse(argc, argv));
  const int rc = b.run();
  return rc;
}
