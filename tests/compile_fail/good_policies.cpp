// expect-compile: ok
// Positive control: valid models of all three concepts compile cleanly, so the compile-fail
// cases fail for the reason they name and not because the harness is broken.
#include <cstdint>
#include <span>
#include <vector>

#include <asio/awaitable.hpp>

#include "common.hpp"

struct good_sm {
  std::int64_t apply(raft::index_t, std::span<const std::byte>) { return 0; }
};

struct good_storage {
  raft::persistent_state load() { return {}; }
  void save_hard_state(const raft::hard_state&) {}
  void append(std::span<const raft::log_entry>) {}
  void truncate_after(raft::index_t) {}
  asio::awaitable<void> flush() { co_return; }
};

struct good_transport {
  void send(raft::message) {}
  asio::awaitable<bool> receive(std::vector<raft::message>&) { co_return false; }
  void close() {}
};

static_assert(raft::state_machine<good_sm>);
static_assert(raft::storage<good_storage>);
static_assert(raft::transport<good_transport>);

void instantiate() {
  require_state_machine<good_sm>();
  require_storage<good_storage>();
  require_transport<good_transport>();
}
