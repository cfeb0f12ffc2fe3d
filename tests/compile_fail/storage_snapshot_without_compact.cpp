// expect-first: raft::snapshot_storage
// expect-first: `void compact_through(raft::index_t, raft::term_t)`
// A storage that stores snapshots but cannot compact its log. It does not model
// raft::snapshot_storage, so a node would quietly never take a snapshot: refused instead.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include <asio/awaitable.hpp>

#include "common.hpp"

struct bad_storage {
  struct writer {
    void write(std::span<const std::byte>) {}
    asio::awaitable<void> commit() { co_return; }
  };
  struct reader {
    raft::snapshot_meta meta() const { return {}; }
    std::uint64_t size() const { return 0; }
    std::size_t read_at(std::uint64_t, std::span<std::byte>) const { return 0; }
  };
  raft::persistent_state load() { return {}; }
  void save_hard_state(const raft::hard_state&) {}
  void append(std::span<const raft::log_entry>) {}
  void truncate_after(raft::index_t) {}
  asio::awaitable<void> flush() { co_return; }
  writer create_snapshot(const raft::snapshot_meta&) { return {}; }
  std::optional<reader> open_snapshot() { return std::nullopt; }
};

void instantiate() { require_storage<bad_storage>(); }
