// expect-first: raft::storage
// expect-first: `asio::awaitable<void> flush()`
// A storage without `flush`.
#include <span>

#include "common.hpp"

struct bad_storage {
  raft::persistent_state load() { return {}; }
  void save_hard_state(const raft::hard_state&) {}
  void append(std::span<const raft::log_entry>) {}
  void truncate_after(raft::index_t) {}
};

void instantiate() { require_storage<bad_storage>(); }
