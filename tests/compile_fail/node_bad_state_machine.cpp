// expect-first: raft::state_machine
// expect-first: `R apply(raft::index_t, std::span<const std::byte>)`
// raft::node itself rejects a state machine without `apply`, naming the concept and the member
// in its first error line.
#include <cstdint>
#include <span>

#include <raft/raft.hpp>

struct bad_sm {
  std::int64_t execute(raft::index_t, std::span<const std::byte>) { return 0; }
};

static_assert(sizeof(raft::node<bad_sm, raft::memory_storage, raft::local_transport>) > 0);
