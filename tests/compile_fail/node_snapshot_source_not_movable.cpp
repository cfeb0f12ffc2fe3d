// expect-first: raft::snapshot_source
// expect-first: the type `snapshot()` returns must be movable
// raft::node refuses a state machine that has snapshot() and restore() but a source it cannot
// move, rather than run it without ever taking a snapshot.
#include <cstddef>
#include <cstdint>
#include <span>

#include <raft/raft.hpp>

struct bad_sm {
  struct source {
    source() = default;
    source(source&&) = delete;
    std::size_t read(std::span<std::byte>) { return 0; }
  };
  struct sink {
    void write(std::span<const std::byte>) {}
    void finish() {}
  };
  std::int64_t apply(raft::index_t, std::span<const std::byte>) { return 0; }
  source snapshot() { return {}; }
  sink restore() { return {}; }
};

static_assert(sizeof(raft::node<bad_sm, raft::memory_storage, raft::local_transport>) > 0);
