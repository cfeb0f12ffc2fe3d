// storage_bench - raft::file_storage throughput: appends/s and entries per fsync, with fsync on
// and off, for 64-byte entries and batches of 1, 16 and 256 entries per flush.
//
//   storage_bench [--seconds S] [--dir PATH] [--size BYTES]
//   storage_bench --idle-groups [--dir PATH]
//
// Each configuration runs for S seconds (default 2) in a fresh directory under PATH (default
// $TMPDIR or /tmp), removed afterwards. One coroutine appends a batch and awaits flush(), as a
// node does; the writer thread writes and syncs. Prints one line per run.
//
// --idle-groups: a raft::shared_log (4 MiB segments, fsync off) where 999 groups write 10
// entries each and go idle while one group writes 1,280,000 more, compacting all but its last
// 1,024 behind it. Run with relocate_bytes 0 and with the default: the segments left on disk,
// the bytes written and the time.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "raft/storage/file.hpp"
#include "raft/storage/shared_log.hpp"

namespace {

struct figures {
  double entries_per_s;
  double flushes_per_s;
  double entries_per_sync;
  raft::file_storage_stats stats;
};

figures run(const std::filesystem::path& root, bool fsync, std::size_t batch, std::size_t size, double seconds) {
  const auto dir = root / ("storage-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  figures f{};
  {
    raft::file_storage s(dir, raft::file_storage_options{fsync, std::size_t{64} << 20, {}});
    (void)s.load();
    std::vector<raft::log_entry> entries(batch);
    const raft::buffer payload{std::vector<std::byte>(size, std::byte{0x5A})};
    asio::io_context io;
    std::uint64_t written = 0;
    std::chrono::steady_clock::time_point start, end;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          std::uint64_t next = 1;
          start = std::chrono::steady_clock::now();
          const auto until = start + std::chrono::duration<double>(seconds);
          while (std::chrono::steady_clock::now() < until) {
            for (auto& e : entries) e = raft::log_entry{raft::term_t{1}, raft::index_t{next++}, raft::entry_kind::command, payload};
            s.append(entries);
            co_await s.flush();
            written += batch;
          }
          end = std::chrono::steady_clock::now();
        },
        asio::detached);
    io.run();
    const double secs = std::chrono::duration<double>(end - start).count();
    f.stats = s.stats();
    f.entries_per_s = double(written) / secs;
    f.flushes_per_s = double(f.stats.flushes) / secs;
    f.entries_per_sync = f.stats.syncs ? double(f.stats.entries_written) / double(f.stats.syncs) : 0.0;
  }
  std::filesystem::remove_all(dir);
  return f;
}

/// Awaits `s.flush()` on an io_context of its own.
template <class Storage>
void flush(Storage& s) {
  asio::io_context io;
  asio::co_spawn(io, s.flush(), asio::detached);
  io.run();
}

void idle_groups(const std::filesystem::path& root, std::size_t relocate_bytes) {
  const auto dir = root / ("storage-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  raft::shared_log_options o;
  o.fsync = false;
  o.segment_bytes = std::size_t{4} << 20;
  o.relocate_bytes = relocate_bytes;
  const raft::buffer payload{std::vector<std::byte>(64, std::byte{0x5A})};
  auto batch = [&](std::uint64_t first, std::size_t n) {
    std::vector<raft::log_entry> out;
    for (std::size_t k = 0; k < n; ++k)
      out.push_back(raft::log_entry{raft::term_t{1}, raft::index_t{first + k}, raft::entry_kind::command, payload});
    return out;
  };
  const auto start = std::chrono::steady_clock::now();
  raft::shared_log_stats st;
  {
    raft::shared_log log(dir, o);
    std::vector<raft::shared_log_group> groups;
    for (std::uint64_t id = 1; id <= 1000; ++id) {
      groups.push_back(log.open_group(raft::group_id{id}));
      (void)groups.back().load();
      groups.back().append(batch(1, 10));
      flush(groups.back());
    }
    auto& busy = groups.front();
    std::uint64_t last = 10;
    for (int k = 0; k < 20'000; ++k) {
      busy.append(batch(last + 1, 64));
      last += 64;
      if (k % 16 == 15) busy.compact_through(raft::index_t{last - 1024}, raft::term_t{1});
      flush(busy);
    }
    st = log.stats();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::size_t files = 0;
  std::uintmax_t bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".log") {
      ++files;
      bytes += e.file_size();
    }
  std::filesystem::remove_all(dir);
  std::printf("%-15zu %9zu %9.1f %9llu %9llu %9.1f %9.2f\n", relocate_bytes, files, double(bytes) / 1e6,
              static_cast<unsigned long long>(st.groups_relocated),
              static_cast<unsigned long long>(st.entries_relocated), double(st.bytes_written) / 1e6, secs);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 2.0;
  std::size_t size = 64;
  const char* tmp = std::getenv("TMPDIR");
  std::filesystem::path root = tmp && *tmp ? tmp : "/tmp";
  if (argc >= 2 && !std::strcmp(argv[1], "--idle-groups")) {
    if (argc == 4 && !std::strcmp(argv[2], "--dir")) root = argv[3];
    std::printf("shared_log, 999 idle groups beside a busy one, directory %s\n", root.c_str());
    std::printf("%-15s %9s %9s %9s %9s %9s %9s\n", "relocate_bytes", "segments", "MB", "groups", "entries",
                "MB written", "seconds");
    std::printf("%-15s %9s %9s %9s %9s %9s %9s\n", "", "left", "left", "copied", "copied", "", "");
    for (const std::size_t r : {std::size_t{0}, raft::shared_log_options{}.relocate_bytes}) idle_groups(root, r);
    return 0;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dir")) root = argv[i + 1];
    else if (!std::strcmp(argv[i], "--size")) size = std::size_t(std::atol(argv[i + 1]));
    else {
      std::fprintf(stderr, "usage: %s [--seconds S] [--dir PATH] [--size BYTES]\n", argv[0]);
      return 2;
    }
  }
  std::printf("file_storage, %zu-byte entries, %.1f s per run, directory %s\n", size, seconds, root.c_str());
  std::printf("%-6s %6s %14s %12s %14s %12s %12s\n", "fsync", "batch", "entries/s", "flushes/s",
              "entries/fsync", "syncs", "writes");
  for (const bool fsync : {true, false}) {
    for (const std::size_t batch : {std::size_t{1}, std::size_t{16}, std::size_t{256}}) {
      const figures f = run(root, fsync, batch, size, seconds);
      char per_sync[32] = "-";
      if (fsync) std::snprintf(per_sync, sizeof per_sync, "%.1f", f.entries_per_sync);
      std::printf("%-6s %6zu %14.0f %12.0f %14s %12llu %12llu\n", fsync ? "on" : "off", batch,
                  f.entries_per_s, f.flushes_per_s, per_sync,
                  static_cast<unsigned long long>(f.stats.syncs),
                  static_cast<unsigned long long>(f.stats.write_calls));
    }
  }
}
