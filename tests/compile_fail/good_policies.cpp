// expect-compile: ok
// Positive control: valid models of the concepts pass both the concepts and the checks raft::node
// runs, so the compile-fail cases fail for the reason they name and not because the harness or
// a check is broken. The snapshot-capable pair models every snapshot concept.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>

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

struct snapshotting_sm : good_sm {
  struct source {
    std::size_t read(std::span<std::byte>) { return 0; }
  };
  struct sink {
    void write(std::span<const std::byte>) {}
    void finish() {}
  };
  source snapshot() { return {}; }
  sink restore() { return {}; }
};

struct snapshotting_storage : good_storage {
  struct writer {
    void write(std::span<const std::byte>) {}
    asio::awaitable<void> commit() { co_return; }
  };
  struct reader {
    raft::snapshot_meta meta() const { return {}; }
    std::uint64_t size() const { return 0; }
    std::size_t read_at(std::uint64_t, std::span<std::byte>) const { return 0; }
  };
  writer create_snapshot(const raft::snapshot_meta&) { return {}; }
  std::optional<reader> open_snapshot() { return std::nullopt; }
  void compact_through(raft::index_t, raft::term_t) {}
};

static_assert(raft::state_machine<good_sm>);
static_assert(raft::storage<good_storage>);
static_assert(raft::transport<good_transport>);
static_assert(raft::timer<asio::steady_timer>);
static_assert(raft::snapshot_state_machine<snapshotting_sm>);
static_assert(raft::snapshot_storage<snapshotting_storage>);

static_assert(raft::detail::check_policies<good_sm, good_storage, good_transport, asio::steady_timer>());
static_assert(raft::detail::check_policies<snapshotting_sm, snapshotting_storage, good_transport, asio::steady_timer>());

void instantiate() {
  require_state_machine<good_sm>();
  require_storage<good_storage>();
  require_transport<good_transport>();
  require_timer<asio::steady_timer>();
}
