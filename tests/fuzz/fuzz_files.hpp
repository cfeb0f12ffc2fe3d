// tests/fuzz/fuzz_files.hpp - what the storage harnesses share: a log entry to compare,
// little-endian fields for the formats they encode on their own, a scratch directory for each
// input's files, and writing one file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

#include "fuzz_support.hpp"

namespace fuzz {

using bytes = std::vector<std::byte>;

/// A log entry as a storage gives it back, for comparisons with a model.
struct entry {
  std::uint64_t term, index;
  std::uint8_t kind;
  bytes payload;
  friend bool operator==(const entry&, const entry&) = default;
};

/// Stores `v` little-endian at b[at..at+4) / b[at..at+8) (the storage formats' byte order).
inline void put32(bytes& b, std::size_t at, std::uint32_t v) {
  for (std::size_t i = 0; i < 4; ++i) b[at + i] = std::byte(v >> (8 * i));
}
inline void put64(bytes& b, std::size_t at, std::uint64_t v) {
  for (std::size_t i = 0; i < 8; ++i) b[at + i] = std::byte(v >> (8 * i));
}

/// This process's scratch directory (in /dev/shm when it is writable: the harnesses write and
/// sync many small files; else $TMPDIR or /tmp), removed when the process exits.
inline const std::filesystem::path& scratch_root() {
  static const std::filesystem::path r = [] {
    const char* env = std::getenv("TMPDIR");
    const std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (env && *env ? env : "/tmp");
    std::filesystem::path p = std::filesystem::path(base) / ("raft-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(p);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_root(), ec);
    });
    return p;
  }();
  return r;
}

/// An empty directory for one input's files (the previous input's are removed).
inline std::filesystem::path fresh_dir() {
  const std::filesystem::path d = scratch_root() / "data";
  std::error_code ec;
  std::filesystem::remove_all(d, ec);
  std::filesystem::create_directories(d);
  return d;
}

inline void write_file(const std::filesystem::path& p, const bytes& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  if (!out) fail("cannot write " + p.string());
}

}  // namespace fuzz
