// Helpers shared by the storage tests: temporary directories and file_storage places.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

#include "raft/storage/file.hpp"

namespace storage_test {

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
