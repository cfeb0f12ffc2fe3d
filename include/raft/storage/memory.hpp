// raft/storage/memory.hpp - raft::memory_storage, a storage that keeps everything in memory.
//
// For tests, benchmarks and nodes that need no durability. It still models durability honestly:
// appends and truncations are pending until flush() makes them "durable", and crash() throws
// away whatever was pending, the way a power cut loses what was not fsynced. A test that keeps
// the object across a node's restart therefore sees exactly what a real disk would have kept.
#pragma once

#include <span>
#include <variant>
#include <vector>

#include <asio/awaitable.hpp>

#include "raft/core/persistent_state.hpp"

namespace raft {
inline namespace v1 {

class memory_storage {
 public:
  memory_storage() = default;
  /// Starts with `initial` already durable (tests use it to set up a node's log by hand).
  explicit memory_storage(persistent_state initial) : durable_(std::move(initial)) {}

  /// Everything durable: what a node restarted after a crash would read.
  [[nodiscard]] persistent_state load() const { return durable_; }

  void save_hard_state(const hard_state& hs) { durable_.state = hs; }

  void append(std::span<const log_entry> entries) {
    pending_.emplace_back(std::vector<log_entry>(entries.begin(), entries.end()));
  }

  void truncate_after(index_t index) { pending_.emplace_back(index); }

  /// Makes every change requested so far durable, in order.
  asio::awaitable<void> flush() {
    apply_pending();
    co_return;
  }

  /// Simulates a crash: changes not yet flushed are lost.
  void crash() { pending_.clear(); }

  /// The durable log (for tests).
  [[nodiscard]] const std::vector<log_entry>& entries() const noexcept { return durable_.entries; }
  [[nodiscard]] const hard_state& state() const noexcept { return durable_.state; }

 private:
  void apply_pending() {
    for (auto& op : pending_) {
      if (auto* entries = std::get_if<std::vector<log_entry>>(&op)) {
        for (auto& e : *entries) durable_.entries.push_back(std::move(e));
      } else {
        const index_t after = std::get<index_t>(op);
        const std::size_t keep = after.value - durable_.base_index.value;
        if (keep < durable_.entries.size()) durable_.entries.resize(keep);
      }
    }
    pending_.clear();
  }

  persistent_state durable_;
  std::vector<std::variant<std::vector<log_entry>, index_t>> pending_;
};

}  // namespace v1
}  // namespace raft
