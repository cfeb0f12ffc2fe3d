// raft/storage/memory.hpp - raft::memory_storage, a storage that keeps everything in memory.
//
// For tests, benchmarks and nodes that need no durability. It still models durability honestly:
// appends and truncations become "durable" only at flush(), and crash() throws away whatever was
// not flushed, the way a power cut loses what was not fsynced (a truncation not yet flushed is
// undone too). A test that keeps the object across a node's restart therefore sees exactly what a
// real disk would have kept. Term and vote are durable as soon as they are saved.
//
// The log is a deque: appending never copies earlier entries, and entries share their payloads
// with the node's in-memory log.
#pragma once

#include <deque>
#include <span>
#include <vector>

#include <asio/awaitable.hpp>

#include "raft/detail/asio_check.hpp"

#include "raft/core/persistent_state.hpp"

namespace raft {
inline namespace v1 {

class memory_storage {
 public:
  memory_storage() = default;
  /// Starts with `initial` already durable (tests use it to set up a node's log by hand).
  explicit memory_storage(persistent_state initial)
      : state_(initial.state),
        base_index_(initial.base_index),
        base_term_(initial.base_term),
        log_(initial.entries.begin(), initial.entries.end()),
        durable_prefix_(log_.size()) {}

  /// Everything durable: what a node restarted after a crash would read.
  [[nodiscard]] persistent_state load() const { return {state_, base_index_, base_term_, entries()}; }

  void save_hard_state(const hard_state& hs) { state_ = hs; }

  void append(std::span<const log_entry> entries) { log_.insert(log_.end(), entries.begin(), entries.end()); }

  void truncate_after(index_t index) {
    const std::size_t keep = index - base_index_;
    if (keep >= log_.size()) return;
    if (keep < durable_prefix_) {
      // Cutting into durable entries: keep them aside until the truncation itself is durable.
      removed_durable_.insert(removed_durable_.begin(), log_.begin() + std::ptrdiff_t(keep),
                              log_.begin() + std::ptrdiff_t(durable_prefix_));
      durable_prefix_ = keep;
    }
    log_.resize(keep);
  }

  /// Makes every change requested so far durable, in order.
  asio::awaitable<void> flush() {
    durable_prefix_ = log_.size();
    removed_durable_.clear();
    co_return;
  }

  /// Simulates a crash: changes not yet flushed are lost.
  void crash() {
    log_.resize(durable_prefix_);
    log_.insert(log_.end(), removed_durable_.begin(), removed_durable_.end());
    removed_durable_.clear();
    durable_prefix_ = log_.size();
  }

  /// The durable log (for tests).
  [[nodiscard]] std::vector<log_entry> entries() const {
    std::vector<log_entry> out(log_.begin(), log_.begin() + std::ptrdiff_t(durable_prefix_));
    out.insert(out.end(), removed_durable_.begin(), removed_durable_.end());
    return out;
  }
  [[nodiscard]] const hard_state& state() const noexcept { return state_; }

 private:
  hard_state state_;
  index_t base_index_{0};
  term_t base_term_{0};
  std::deque<log_entry> log_;          ///< every entry appended and not truncated
  std::size_t durable_prefix_ = 0;     ///< log_[0, durable_prefix_) is durable
  std::vector<log_entry> removed_durable_;  ///< durable entries after that, truncated unflushed
};

}  // namespace v1
}  // namespace raft
