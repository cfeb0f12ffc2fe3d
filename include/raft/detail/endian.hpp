// raft/detail/endian.hpp - little-endian fixed-width integers in byte buffers.
//
// Every multi-byte integer in the library's formats (log records and snapshot files, the wire
// format, configuration and snapshot metadata encodings, session frames and snapshots, the test
// key-value store's commands and snapshots) is a little-endian u32 or u64, written and read with
// these functions. They work byte by byte, so they give the same bytes on every host and need no
// alignment.
//
// Standard C++ only (no Asio, no I/O): raft/core/ headers use it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace raft {
inline namespace v1 {
namespace detail {

/// Writes `v` into p[0..3], least significant byte first.
inline void store_u32(std::byte* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(static_cast<std::uint8_t>(v >> (8 * i)));
}
/// Writes `v` into p[0..7], least significant byte first.
inline void store_u64(std::byte* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(static_cast<std::uint8_t>(v >> (8 * i)));
}

/// The u32 in p[0..3] (least significant byte first).
[[nodiscard]] inline std::uint32_t load_u32(const std::byte* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t(static_cast<std::uint8_t>(p[i])) << (8 * i);
  return v;
}
/// The u64 in p[0..7] (least significant byte first).
[[nodiscard]] inline std::uint64_t load_u64(const std::byte* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t(static_cast<std::uint8_t>(p[i])) << (8 * i);
  return v;
}

// Appending pushes byte by byte: GCC 12 reports false -Wstringop-overflow on a range insert()
// into a vector that was just reserved or cleared.

/// Appends the 4 bytes of `v` to `out`.
inline void append_u32(std::vector<std::byte>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::byte>(static_cast<std::uint8_t>(v >> (8 * i))));
}
/// Appends the 8 bytes of `v` to `out`.
inline void append_u64(std::vector<std::byte>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::byte>(static_cast<std::uint8_t>(v >> (8 * i))));
}

/// Reads a u32 from the front of `in` into `v` and drops those 4 bytes from `in`. If `in` holds
/// fewer than 4 bytes, returns false and changes neither.
[[nodiscard]] inline bool read_u32(std::span<const std::byte>& in, std::uint32_t& v) noexcept {
  if (in.size() < 4) return false;
  v = load_u32(in.data());
  in = in.subspan(4);
  return true;
}
/// Reads a u64 from the front of `in` into `v` and drops those 8 bytes from `in`. If `in` holds
/// fewer than 8 bytes, returns false and changes neither.
[[nodiscard]] inline bool read_u64(std::span<const std::byte>& in, std::uint64_t& v) noexcept {
  if (in.size() < 8) return false;
  v = load_u64(in.data());
  in = in.subspan(8);
  return true;
}

}  // namespace detail
}  // namespace v1
}  // namespace raft
