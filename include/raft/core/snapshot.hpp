// raft/core/snapshot.hpp - what describes a snapshot (thesis §5.1).
//
// A snapshot replaces the log up to and including `index`: it holds the state machine's state
// after applying that entry, and the membership in effect there (the latest configuration entry
// at or before `index`), so that the compacted log loses nothing a node needs.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "raft/core/buffer.hpp"
#include "raft/core/configuration.hpp"
#include "raft/core/types.hpp"
#include "raft/detail/endian.hpp"

namespace raft {
inline namespace v1 {

struct snapshot_meta {
  index_t index;         ///< last entry the snapshot covers
  term_t term;           ///< its term
  configuration config;  ///< the configuration in effect at `index`
  friend bool operator==(const snapshot_meta&, const snapshot_meta&) = default;
};

/// Encoding: little-endian u64 index, u64 term, then the configuration's own encoding.
[[nodiscard]] inline buffer encode(const snapshot_meta& m) {
  std::vector<std::byte> out;
  detail::append_u64(out, m.index.value);
  detail::append_u64(out, m.term.value);
  const buffer c = encode(m.config);
  out.insert(out.end(), c.bytes().begin(), c.bytes().end());
  return buffer{out};
}

/// Decodes snapshot metadata; `std::nullopt` if the bytes are not valid metadata.
[[nodiscard]] inline std::optional<snapshot_meta> decode_snapshot_meta(std::span<const std::byte> in) {
  std::uint64_t index = 0, term = 0;
  if (!detail::read_u64(in, index) || !detail::read_u64(in, term)) return std::nullopt;
  auto c = decode_configuration(in);
  if (!c || index == 0 || term == 0) return std::nullopt;
  return snapshot_meta{index_t{index}, term_t{term}, std::move(*c)};
}

}  // namespace v1
}  // namespace raft
