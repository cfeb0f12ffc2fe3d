// benchmarks/support/null_state_machine.hpp - the benchmark's state machine: it applies nothing
// and only counts, so the figures measured are the library's own cost, not a key-value store's.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>

#include <raft/raft.hpp>

namespace raft_bench {

/// Applies nothing; counts. Its result (the entry's index) is what async_propose() completes with.
/// Its snapshot is the count (8 bytes), so snapshots cost the library, not the state machine.
struct null_state_machine {
  std::uint64_t applied = 0;
  std::uint64_t apply(raft::index_t index, std::span<const std::byte>) noexcept {
    ++applied;
    return index.value;
  }

  /// The count at the time of the call, read out once.
  struct source {
    std::array<std::byte, 8> bytes{};
    std::size_t offset = 0;
    std::size_t read(std::span<std::byte> buf) noexcept {
      const std::size_t n = std::min(buf.size(), bytes.size() - offset);
      std::memcpy(buf.data(), bytes.data() + offset, n);
      offset += n;
      return n;
    }
  };
  /// Collects the 8 bytes of a count; finish() makes it the state machine's.
  struct sink {
    null_state_machine* sm;
    std::array<std::byte, 8> bytes{};
    std::size_t received = 0;
    void write(std::span<const std::byte> b) {
      if (b.size() > bytes.size() - received) throw std::runtime_error("null_state_machine: snapshot too long");
      std::memcpy(bytes.data() + received, b.data(), b.size());
      received += b.size();
    }
    void finish() {
      if (received != bytes.size()) throw std::runtime_error("null_state_machine: snapshot too short");
      std::memcpy(&sm->applied, bytes.data(), bytes.size());
    }
  };
  source snapshot() const noexcept {
    source s;
    std::memcpy(s.bytes.data(), &applied, s.bytes.size());
    return s;
  }
  sink restore() noexcept { return sink{this}; }
};

/// What async_propose() completes with on a node of this state machine.
using propose_result = raft::result<std::uint64_t>;

}  // namespace raft_bench
