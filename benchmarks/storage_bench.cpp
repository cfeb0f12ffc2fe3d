// storage_bench - raft::file_storage throughput: appends/s and entries per fsync, with fsync on
// and off, for 64-byte entries and batches of 1, 16 and 256 entries per flush.
//
//   storage_bench [--seconds S] [--dir PATH] [--size BYTES]
//
// Each configuration runs for S seconds (default 2) in a fresh directory under PATH (default
// $TMPDIR or /tmp), removed afterwards. One coroutine appends a batch and awaits flush(), as the
// node's persist loop does; the writer thread writes and syncs. Prints one line per run.
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

}  // namespace

int main(int argc, char** argv) {
  double seconds = 2.0;
  std::size_t size = 64;
  const char* tmp = std::getenv("TMPDIR");
  std::filesystem::path root = tmp && *tmp ? tmp : "/tmp";
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
