// expect-first: raft::state_machine
// expect-first: `apply` must return a result
// A state machine whose `apply` returns void: proposers need a result.
#include <span>

#include "common.hpp"

struct bad_sm {
  void apply(raft::index_t, std::span<const std::byte>) {}
};

void instantiate() { require_state_machine<bad_sm>(); }
