// expect-first: raft::snapshot_source
// expect-first: the type `snapshot()` returns must be movable
// A state machine with snapshot() and restore() whose source cannot be moved. It does not model
// raft::snapshot_state_machine, so a node would quietly never take a snapshot: refused instead.
#include <cstddef>
#include <cstdint>
#include <span>

#include "common.hpp"

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

void instantiate() { require_state_machine<bad_sm>(); }
