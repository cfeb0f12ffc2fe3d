// expect: s.truncate_after(index)
// The concept on its own (what a user's `static_assert(raft::storage<T>)` gives): the compiler's
// note names the concept's expression that is invalid.
#include <span>

#include <asio/awaitable.hpp>

#include <raft/concepts.hpp>

struct bad_storage {
  raft::persistent_state load() { return {}; }
  void save_hard_state(const raft::hard_state&) {}
  void append(std::span<const raft::log_entry>) {}
  asio::awaitable<void> flush() { co_return; }
};

static_assert(raft::storage<bad_storage>);
