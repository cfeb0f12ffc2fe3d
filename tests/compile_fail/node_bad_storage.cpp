// expect-first: raft::storage
// expect-first: `asio::awaitable<void> flush()`
// raft::node itself rejects a storage without `flush`, naming the concept and the member in its
// first error line.
#include <cstdint>
#include <span>

#include <raft/raft.hpp>

struct sm {
  std::int64_t apply(raft::index_t, std::span<const std::byte>) { return 0; }
};

struct bad_storage {
  raft::persistent_state load() { return {}; }
  void save_hard_state(const raft::hard_state&) {}
  void append(std::span<const raft::log_entry>) {}
  void truncate_after(raft::index_t) {}
};

static_assert(sizeof(raft::node<sm, bad_storage, raft::local_transport>) > 0);
