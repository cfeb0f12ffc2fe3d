// Helpers shared by the storage tests: temporary directories, file_storage places, running a
// storage's coroutine to its end, and whole files and strings as bytes.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "raft/storage/file.hpp"

namespace storage_test {

/// file_storage without fsync, with the default segment size: for tests that never lose power.
inline const raft::file_storage_options no_sync{false, std::size_t{64} << 20, {}};

/// Runs `task` (a flush, a snapshot commit) on an io_context of its own until it completes, and
/// rethrows what it threw. The deadline only keeps a broken build from hanging.
inline void run(asio::awaitable<void> task) {
  asio::io_context io;
  std::exception_ptr error;
  bool done = false;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e) {
    error = e;
    done = true;
  });
  io.run_for(std::chrono::seconds(60));
  REQUIRE(done);
  if (error) std::rethrow_exception(error);
}

inline std::vector<std::byte> bytes_of(const std::string& s) {
  const auto b = std::as_bytes(std::span(s.data(), s.size()));
  return {b.begin(), b.end()};
}

inline std::vector<char> read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_file(const std::filesystem::path& p, const std::vector<char>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

/// A fresh directory under $TMPDIR (or /tmp), removed with everything in it when destroyed.
class temp_dir {
 public:
  temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/raft-storage-test-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path_ = buf.data();
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

/// A conformance-suite place for file_storage: a temporary directory. open() destroys the
/// storage it opened before (joining its writer thread), then opens the directory again.
class file_place {
 public:
  explicit file_place(raft::file_storage_options o = {}) : options_(std::move(o)) {}
  raft::file_storage& open() {
    storage_.reset();
    storage_.emplace(dir_.path() / "data", options_);
    return *storage_;
  }
  void close() { storage_.reset(); }
  [[nodiscard]] std::filesystem::path data() const { return dir_.path() / "data"; }

 private:
  temp_dir dir_;  // destroyed after the storage
  raft::file_storage_options options_;
  std::optional<raft::file_storage> storage_;
};

}  // namespace storage_test
