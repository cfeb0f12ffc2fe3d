// expect-first: raft::state_machine
// expect-first: `R apply(raft::index_t, std::span<const std::byte>)`
// A state machine without `apply`.
#include <cstdint>
#include <span>

#include "common.hpp"

struct bad_sm {
  std::int64_t execute(raft::index_t, std::span<const std::byte>) { return 0; }
};

void instantiate() { require_state_machine<bad_sm>(); }
