// detail/endian.hpp: the little-endian u32/u64 helpers every format of the library is written
// with. Exact bytes (least significant first, no sign extension), round trips over edge values
// and every single-bit value, writes that touch exactly their 4 or 8 bytes at any alignment, and
// span reads that refuse a too-short input without reading or consuming anything.
#include <doctest/doctest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "raft/detail/endian.hpp"

namespace {

std::vector<std::byte> endian_bytes(std::initializer_list<unsigned> values) {
  std::vector<std::byte> out;
  for (unsigned v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

std::vector<std::uint64_t> endian_edge_values() {
  std::vector<std::uint64_t> v = {0,          1,          0x7F,        0x80,         0xFF,
                                  0x100,      0x7FFFFFFF, 0x80000000,  0xFFFFFFFF,   0x100000000,
                                  0x0123456789ABCDEFull,  0xFEDCBA9876543210ull,
                                  std::numeric_limits<std::uint64_t>::max() - 1,
                                  std::numeric_limits<std::uint64_t>::max()};
  for (int bit = 0; bit < 64; ++bit) v.push_back(std::uint64_t{1} << bit);
  return v;
}

}  // namespace

TEST_CASE("endian: store and append write the least significant byte first") {
  std::array<std::byte, 8> b{};
  raft::detail::store_u32(b.data(), 0x04030201u);
  CHECK(std::vector<std::byte>(b.begin(), b.begin() + 4) == endian_bytes({1, 2, 3, 4}));
  raft::detail::store_u64(b.data(), 0x0807060504030201ull);
  CHECK(std::vector<std::byte>(b.begin(), b.end()) == endian_bytes({1, 2, 3, 4, 5, 6, 7, 8}));
  // High bits stay high: no sign extension anywhere.
  raft::detail::store_u32(b.data(), 0x80000000u);
  CHECK(std::vector<std::byte>(b.begin(), b.begin() + 4) == endian_bytes({0, 0, 0, 0x80}));
  raft::detail::store_u64(b.data(), 0xFF00000000000080ull);
  CHECK(std::vector<std::byte>(b.begin(), b.end()) == endian_bytes({0x80, 0, 0, 0, 0, 0, 0, 0xFF}));

  std::vector<std::byte> out = endian_bytes({0xAA});
  raft::detail::append_u32(out, 0xDDCCBBAAu);
  raft::detail::append_u64(out, 0x1122334455667788ull);
  CHECK(out == endian_bytes({0xAA, 0xAA, 0xBB, 0xCC, 0xDD, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11}));
}

TEST_CASE("endian: load reads what store wrote, from exact bytes") {
  const auto b = endian_bytes({0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01});
  CHECK(raft::detail::load_u32(b.data()) == 0x89ABCDEFu);
  CHECK(raft::detail::load_u64(b.data()) == 0x0123456789ABCDEFull);
  const auto high = endian_bytes({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF});
  CHECK(raft::detail::load_u32(high.data()) == std::numeric_limits<std::uint32_t>::max());
  CHECK(raft::detail::load_u64(high.data()) == std::numeric_limits<std::uint64_t>::max());
}

TEST_CASE("endian: round trips at every alignment; writes touch exactly their bytes") {
  for (std::uint64_t v : endian_edge_values()) {
    const auto v32 = static_cast<std::uint32_t>(v);
    for (std::size_t at = 0; at < 8; ++at) {
      INFO("value " << v << ", offset " << at);
      std::array<std::byte, 24> b;
      b.fill(std::byte{0x5A});
      raft::detail::store_u64(b.data() + at, v);
      CHECK(raft::detail::load_u64(b.data() + at) == v);
      for (std::size_t i = 0; i < b.size(); ++i)
        if (i < at || i >= at + 8) CHECK(b[i] == std::byte{0x5A});

      b.fill(std::byte{0x5A});
      raft::detail::store_u32(b.data() + at, v32);
      CHECK(raft::detail::load_u32(b.data() + at) == v32);
      for (std::size_t i = 0; i < b.size(); ++i)
        if (i < at || i >= at + 4) CHECK(b[i] == std::byte{0x5A});
    }
    std::vector<std::byte> out;
    raft::detail::append_u64(out, v);
    raft::detail::append_u32(out, v32);
    REQUIRE(out.size() == 12);
    std::span<const std::byte> in{out};
    std::uint64_t r64 = 0;
    std::uint32_t r32 = 0;
    CHECK(raft::detail::read_u64(in, r64));
    CHECK(raft::detail::read_u32(in, r32));
    CHECK(r64 == v);
    CHECK(r32 == v32);
    CHECK(in.empty());
  }
}

TEST_CASE("endian: read_u32/read_u64 advance the span past what they read") {
  const auto b = endian_bytes({1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9});
  std::span<const std::byte> in{b};
  std::uint32_t a = 0;
  std::uint64_t c = 0;
  REQUIRE(raft::detail::read_u32(in, a));
  CHECK(a == 1);
  CHECK(in.data() == b.data() + 4);
  CHECK(in.size() == 9);
  REQUIRE(raft::detail::read_u64(in, c));
  CHECK(c == 2);
  CHECK(in.data() == b.data() + 12);
  CHECK(in.size() == 1);
}

TEST_CASE("endian: reading from a too-short span fails and changes neither the span nor the value") {
  const auto b = endian_bytes({1, 2, 3, 4, 5, 6, 7});
  for (std::size_t n = 0; n < 8; ++n) {
    INFO("span of " << n << " bytes");
    const std::span<const std::byte> whole = std::span<const std::byte>(b).first(n);
    std::span<const std::byte> in = whole;
    std::uint64_t v64 = 0xDEADBEEFDEADBEEFull;
    CHECK_FALSE(raft::detail::read_u64(in, v64));
    CHECK(v64 == 0xDEADBEEFDEADBEEFull);
    CHECK(in.data() == whole.data());
    CHECK(in.size() == n);
    if (n < 4) {
      std::uint32_t v32 = 0xDEADBEEFu;
      CHECK_FALSE(raft::detail::read_u32(in, v32));
      CHECK(v32 == 0xDEADBEEFu);
      CHECK(in.data() == whole.data());
      CHECK(in.size() == n);
    } else {
      std::uint32_t v32 = 0;
      CHECK(raft::detail::read_u32(in, v32));
      CHECK(v32 == 0x04030201u);
      CHECK(in.size() == n - 4);
    }
  }
  // A null empty span (the default) is refused the same way.
  std::span<const std::byte> none;
  std::uint64_t v = 7;
  CHECK_FALSE(raft::detail::read_u64(none, v));
  CHECK(v == 7);
}
