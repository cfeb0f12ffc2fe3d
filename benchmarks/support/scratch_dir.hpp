// benchmarks/support/scratch_dir.hpp - the fresh temporary directory that file storage writes
// into, removed with everything in it when the run ends (or is abandoned).
#pragma once

#include <stdlib.h>  // mkdtemp

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace raft_bench {

/// A fresh directory (mkdtemp) under `parent` ($TMPDIR or /tmp if empty), removed with everything
/// in it on destruction.
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

  /// Removes the directory now (idempotent): also on the way out of an abandoned run.
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

}  // namespace raft_bench
