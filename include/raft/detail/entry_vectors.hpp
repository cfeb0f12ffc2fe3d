// raft/detail/entry_vectors.hpp - a per-thread pool of the entry vectors AppendEntries messages
// carry, so that messages in steady state reuse vectors instead of allocating them.
#pragma once

#include <array>
#include <cstddef>
#include <utility>
#include <vector>

#include "raft/core/entry.hpp"

namespace raft {
inline namespace v1 {
namespace detail {

/// Spare entry vectors of AppendEntries messages, per thread. Whoever builds a message takes one
/// (send_append, the codec's decoder), whoever is done with one gives it back (the follower once
/// the entries are in its log, the TCP writer once they are encoded): in steady state messages
/// reuse the same few vectors instead of allocating one each.
class entry_vectors {
 public:
  [[nodiscard]] static std::vector<log_entry> take() {
    auto& p = pool();
    if (p.count == 0) return {};
    return std::move(p.spare[--p.count]);
  }
  static void give(std::vector<log_entry>&& v) {
    v.clear();
    auto& p = pool();
    if (v.capacity() == 0 || v.capacity() > max_capacity || p.count == max_spares) return;
    p.spare[p.count++] = std::move(v);
  }

 private:
  static constexpr std::size_t max_spares = 64;
  static constexpr std::size_t max_capacity = 4096;
  struct spares {
    std::array<std::vector<log_entry>, max_spares> spare;  ///< [0, count) hold capacity
    std::size_t count = 0;
  };
  static spares& pool() {
    thread_local spares p;
    return p;
  }
};

}  // namespace detail
}  // namespace v1
}  // namespace raft
