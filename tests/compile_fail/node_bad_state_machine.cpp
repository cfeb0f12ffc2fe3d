// expect: sm.apply
// raft::node itself rejects a state machine without `apply`, naming the missing expression.
#include <cstdint>
#include <span>

#include <raft/raft.hpp>

struct bad_sm {
  std::int64_t execute(raft::index_t, std::span<const std::byte>) { return 0; }
};

void instantiate() {
  [[maybe_unused]] raft::node<bad_sm, raft::memory_storage, raft::local_transport>* n = nullptr;
}
