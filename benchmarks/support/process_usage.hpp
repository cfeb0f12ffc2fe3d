// benchmarks/support/process_usage.hpp - what this process has used so far: CPU time (user and
// kernel, every thread), peak and current resident memory, heap allocations; and the machine's
// load average. The benchmark takes one sample at each edge of the measurement window and reports
// the difference.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <optional>

#include "allocation_counter.hpp"

namespace raft_bench {

struct cpu_sample {
  double cpu_seconds = 0;
  double system_seconds = 0;  // of cpu_seconds, in the kernel
  long max_rss_kb = 0;
  long rss_kb = 0;            // resident now (/proc/self/statm), -1 if unknown
  std::optional<std::uint64_t> allocations;
};

/// The process's resident set now, in KiB (Linux), or -1.
inline long current_rss_kb() {
  long pages = -1, resident = -1;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    std::fclose(f);
  }
  return resident < 0 ? -1 : resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

inline cpu_sample sample_cpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return {secs(u.ru_utime) + secs(u.ru_stime), secs(u.ru_stime), u.ru_maxrss, current_rss_kb(),
          allocation_count()};
}

/// The 1-minute load average (Linux), or -1: on a shared machine other work skews the figures.
inline double load_average() {
  double load = -1;
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = -1;
    std::fclose(f);
  }
  return load;
}

}  // namespace raft_bench
