// expect-first: raft::storage
// expect-first: `void truncate_after(raft::index_t)`
// A storage that cannot truncate its log.
#include <span>

#include <asio/awaitable.hpp>

#include "common.hpp"

struct bad_storage {
  raft::persistent_state load() { return {}; }
  void save_hard_state(const raft::hard_state&) {}
  void append(std::span<const raft::log_entry>) {}
  asio::awaitable<void> flush() { co_return; }
};

void instantiate() { require_storage<bad_storage>(); }
