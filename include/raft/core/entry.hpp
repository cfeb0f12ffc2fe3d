// raft/core/entry.hpp - log entries.
#pragma once

#include <cstdint>

#include "raft/core/buffer.hpp"
#include "raft/core/types.hpp"

namespace raft {
inline namespace v1 {

/// What a log entry carries.
enum class entry_kind : std::uint8_t {
  command = 0,        ///< a client command, handed to the state machine when committed
  noop = 1,           ///< appended by a new leader at the start of its term (§3.6.2, §6.4)
  configuration = 2,  ///< a cluster membership (see core/configuration.hpp for its encoding)
};

/// One entry of the replicated log.
struct log_entry {
  term_t term;        ///< term of the leader that created the entry
  index_t index;      ///< position in the log (1-based)
  entry_kind kind = entry_kind::command;
  buffer data;        ///< command bytes or encoded configuration; shared, never copied

  friend bool operator==(const log_entry&, const log_entry&) = default;
};

/// Bytes an entry costs in a message or in the log's accounting: payload plus a fixed header.
inline constexpr std::size_t entry_overhead_bytes = 24;
[[nodiscard]] inline std::size_t entry_size(const log_entry& e) noexcept {
  return e.data.size() + entry_overhead_bytes;
}

}  // namespace v1
}  // namespace raft
