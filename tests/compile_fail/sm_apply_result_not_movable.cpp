// expect-first: raft::state_machine
// expect-first: the result of `apply` must be movable
// A state machine whose result cannot be moved: the node moves it into the proposer's completion.
#include <span>

#include "common.hpp"

struct pinned {
  explicit pinned(int v) : value(v) {}
  pinned(pinned&&) = delete;
  int value;
};

struct bad_sm {
  pinned apply(raft::index_t, std::span<const std::byte>) { return pinned{0}; }
};

void instantiate() { require_state_machine<bad_sm>(); }
