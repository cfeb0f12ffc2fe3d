// expect-first: raft::state_machine
// expect-first: `R apply(raft::index_t, std::span<const std::byte>)`
// A state machine whose `apply` takes the command as a string: not callable with a byte span.
#include <cstdint>
#include <string>

#include "common.hpp"

struct bad_sm {
  std::int64_t apply(raft::index_t, const std::string&) { return 0; }
};

void instantiate() { require_state_machine<bad_sm>(); }
