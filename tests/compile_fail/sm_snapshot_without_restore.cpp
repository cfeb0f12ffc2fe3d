// expect-first: raft::snapshot_state_machine
// expect-first: has `snapshot()` but no `restore()`
// A state machine that can take snapshots but not restore one.
#include <cstddef>
#include <cstdint>
#include <span>

#include "common.hpp"

struct bad_sm {
  struct source {
    std::size_t read(std::span<std::byte>) { return 0; }
  };
  std::int64_t apply(raft::index_t, std::span<const std::byte>) { return 0; }
  source snapshot() { return {}; }
};

void instantiate() { require_state_machine<bad_sm>(); }
