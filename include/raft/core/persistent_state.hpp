// raft/core/persistent_state.hpp - what a node keeps on stable storage (Figure 3.1 "Persistent
// state on all servers"), as handed back by a storage on start.
#pragma once

#include <vector>

#include "raft/core/entry.hpp"
#include "raft/core/types.hpp"

namespace raft {
inline namespace v1 {

/// Term and vote. Always written together, atomically: a vote belongs to exactly one term.
struct hard_state {
  term_t term;
  node_id voted_for = no_node;
  friend bool operator==(const hard_state&, const hard_state&) = default;
};

/// Everything a storage holds, read once when a node starts.
/// Invariant: `entries` are contiguous, starting at `base_index + 1`.
struct persistent_state {
  hard_state state;
  index_t base_index;   ///< last compacted entry (0 if none)
  term_t base_term;     ///< its term
  std::vector<log_entry> entries;
};

}  // namespace v1
}  // namespace raft
