// raft/storage/detail/crc32c.hpp - CRC-32C (Castagnoli), the checksum of file_storage records.
//
// A portable software implementation: table-driven, "slicing by 8" (eight 256-entry tables,
// built at compile time, 8 KiB), which handles 8 bytes per step. It does not use the SSE4.2 or
// ARMv8 CRC instructions; at the record sizes of a Raft log the checksum is a small share of
// the cost of a flush either way.
//
// crc32c("123456789") == 0xE3069283 (the standard check value).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace raft {
inline namespace v1 {
namespace detail {

inline constexpr std::uint32_t crc32c_polynomial = 0x82F63B78u;  // reflected 0x1EDC6F41

inline constexpr auto crc32c_tables = [] {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ crc32c_polynomial : c >> 1;
    t[0][i] = c;
  }
  for (std::size_t i = 0; i < 256; ++i)
    for (std::size_t s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFFu];
  return t;
}();

/// Continues a CRC-32C over `size` more bytes: `crc32c_update(crc32c_update(0, a), b)` equals
/// the CRC of a followed by b. Start with 0.
[[nodiscard]] inline std::uint32_t crc32c_update(std::uint32_t crc, const void* data,
                                                 std::size_t size) noexcept {
  const auto& t = crc32c_tables;
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint32_t c = ~crc;
  while (size >= 8) {
    const std::uint32_t lo = c ^ (std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 |
                                  std::uint32_t(p[2]) << 16 | std::uint32_t(p[3]) << 24);
    const std::uint32_t hi = std::uint32_t(p[4]) | std::uint32_t(p[5]) << 8 |
                             std::uint32_t(p[6]) << 16 | std::uint32_t(p[7]) << 24;
    c = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
        t[3][hi & 0xFFu] ^ t[2][(hi >> 8) & 0xFFu] ^ t[1][(hi >> 16) & 0xFFu] ^ t[0][hi >> 24];
    p += 8;
    size -= 8;
  }
  while (size-- > 0) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFFu];
  return ~c;
}

/// The CRC-32C of `size` bytes at `data`.
[[nodiscard]] inline std::uint32_t crc32c(const void* data, std::size_t size) noexcept {
  return crc32c_update(0, data, size);
}

}  // namespace detail
}  // namespace v1
}  // namespace raft
