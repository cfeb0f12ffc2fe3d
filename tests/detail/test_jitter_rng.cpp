// detail::jitter_rng: the node's election-jitter generator (and the simulation's) draws exactly
// what std::mt19937_64 and (with libstdc++) std::uniform_int_distribution draw, so a seed replays
// the same trace; between() and unit() are defined on its output alone.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "raft/detail/jitter_rng.hpp"

TEST_CASE("jitter_rng produces the output of std::mt19937_64 for the same seed") {
  for (std::uint64_t seed : {std::uint64_t{1}, std::uint64_t{42}, std::uint64_t{0x9E3779B97F4A7C15ull * 3}}) {
    std::mt19937_64 reference(seed);
    raft::detail::jitter_rng rng(seed);
    for (int i = 0; i < 2000; ++i) REQUIRE(rng() == reference());
  }
}

TEST_CASE("jitter_rng draws numbers below the range, uniformly as libstdc++ does") {
  for (std::uint64_t range : {std::uint64_t{1}, std::uint64_t{3}, std::uint64_t{1000},
                              std::uint64_t{150'000'000}, std::uint64_t{1} << 62}) {
    std::mt19937_64 reference(7);
    raft::detail::jitter_rng rng(7);
    std::uniform_int_distribution<std::int64_t> dist(0, static_cast<std::int64_t>(range - 1));
    for (int i = 0; i < 2000; ++i) {
      const std::uint64_t x = rng.below(range);
      REQUIRE(x < range);
#if defined(__GLIBCXX__) && defined(__SIZEOF_INT128__)
      REQUIRE(x == static_cast<std::uint64_t>(dist(reference)));
#endif
    }
  }
}

// The members the simulation draws with (between, unit) are defined on the generator's output
// alone, so the numbers below hold with any standard library; only the comparisons with
// std::uniform_int_distribution are libstdc++'s.

TEST_CASE("jitter_rng's first outputs are those the standard fixes for std::mt19937_64(5489)") {
  // [rand.predef]: the 10000th output of a default-constructed std::mt19937_64 (seed 5489).
  raft::detail::jitter_rng rng(5489);
  std::mt19937_64 reference(5489);
  for (int i = 0; i < 5; ++i) REQUIRE(rng() == reference());
  raft::detail::jitter_rng fresh(5489);
  std::uint64_t x = 0;
  for (int i = 0; i < 10000; ++i) x = fresh();
  CHECK(x == 9981545732273789042ull);
}

TEST_CASE("jitter_rng::between(lo, hi) is lo + below(hi - lo + 1), within [lo, hi], both ends reached") {
  for (std::uint64_t seed : {std::uint64_t{1}, std::uint64_t{5489}, std::uint64_t{0xDEADBEEF}}) {
    CAPTURE(seed);
    raft::detail::jitter_rng a(seed), b(seed);
    for (int i = 0; i < 1000; ++i) {
      REQUIRE(a.between<std::uint64_t>(10, 20) == 10 + b.below(11));
      REQUIRE(a.between<std::int64_t>(-500, 1500) == -500 + static_cast<std::int64_t>(b.below(2001)));
      REQUIRE(a.between<std::size_t>(7, 7) == 7 + b.below(1));
    }
  }
  // Small ranges: every value is drawn, the ends included, and nothing outside.
  raft::detail::jitter_rng rng(3);
  for (std::int64_t lo : {std::int64_t{-3}, std::int64_t{0}, std::int64_t{1000}}) {
    const std::int64_t hi = lo + 4;
    int seen[5] = {};
    for (int i = 0; i < 500; ++i) {
      const std::int64_t x = rng.between(lo, hi);
      REQUIRE(x >= lo);
      REQUIRE(x <= hi);
      ++seen[x - lo];
    }
    for (int k = 0; k < 5; ++k) CHECK(seen[k] > 0);
  }
  bool zero = false, one = false;
  for (int i = 0; i < 200; ++i) (rng.between(0u, 1u) == 0 ? zero : one) = true;
  CHECK(zero);
  CHECK(one);
#if defined(__GLIBCXX__) && defined(__SIZEOF_INT128__)
  // What the simulation drew before with libstdc++, it draws now.
  raft::detail::jitter_rng mine(99);
  std::mt19937_64 theirs(99);
  std::uniform_int_distribution<std::int64_t> delay(500'000, 1'500'000);
  std::uniform_int_distribution<std::size_t> pick(0, 9);
  for (int i = 0; i < 1000; ++i) {
    REQUIRE(mine.between(std::int64_t{500'000}, std::int64_t{1'500'000}) == delay(theirs));
    REQUIRE(mine.between(std::size_t{0}, std::size_t{9}) == pick(theirs));
  }
#endif
}

TEST_CASE("jitter_rng::between covers the full 64-bit range without overflow") {
  constexpr auto min = std::numeric_limits<std::int64_t>::min(), max = std::numeric_limits<std::int64_t>::max();
  // The whole range: lo plus one output as it is (modulo 2^64).
  raft::detail::jitter_rng a(11), b(11);
  for (int i = 0; i < 100; ++i) {
    REQUIRE(a.between<std::uint64_t>(0, ~std::uint64_t{0}) == b());
    REQUIRE(a.between(min, max) == static_cast<std::int64_t>(b() + static_cast<std::uint64_t>(min)));
  }
  // Ranges that do not fit in the type's signed half.
  raft::detail::jitter_rng c(12), d(12);
  bool negative = false, positive = false;
  for (int i = 0; i < 1000; ++i) {
    const std::int64_t x = c.between(min + 1, max);
    REQUIRE(x >= min + 1);
    REQUIRE(static_cast<std::uint64_t>(x) - static_cast<std::uint64_t>(min + 1) == d.below(~std::uint64_t{0}));
    (x < 0 ? negative : positive) = true;
    const std::uint64_t y = c.between(~std::uint64_t{0} - 1, ~std::uint64_t{0});
    REQUIRE(y >= ~std::uint64_t{0} - 1);
    REQUIRE(y == ~std::uint64_t{0} - 1 + d.below(2));
  }
  CHECK(negative);
  CHECK(positive);
  // Narrow types.
  raft::detail::jitter_rng e(13);
  bool low = false, high = false;
  for (int i = 0; i < 2000; ++i) {
    const auto x = e.between<std::int8_t>(-128, 127);
    low = low || x == -128;
    high = high || x == 127;
  }
  CHECK(low);
  CHECK(high);
}

TEST_CASE("jitter_rng::unit() is the top 53 bits of one output, in [0, 1)") {
  raft::detail::jitter_rng a(5489), b(5489);
  double lo = 1.0, hi = 0.0;
  for (int i = 0; i < 10000; ++i) {
    const double u = a.unit();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    REQUIRE(u == static_cast<double>(b() >> 11) / 9007199254740992.0);  // 2^53
    lo = std::min(lo, u);
    hi = std::max(hi, u);
  }
  CHECK(lo < 0.001);
  CHECK(hi > 0.999);
  // The largest output gives the largest double below 1.
  CHECK(static_cast<double>(~std::uint64_t{0} >> 11) * 0x1.0p-53 == std::nextafter(1.0, 0.0));
}

TEST_CASE("jitter_rng: fixed draws for seed 5489, the same with every standard library") {
  // Computed apart from the C++ code, from the mt19937_64 recurrence and the mappings'
  // definitions (Lemire's multiply-shift with rejection; top 53 bits times 2^-53). The first
  // outputs of seed 5489 are 14514284786278117030, 4620546740167642908, 13109570281517897720.
  raft::detail::jitter_rng raw(5489);
  CHECK(raw() == 14514284786278117030ull);
  CHECK(raw() == 4620546740167642908ull);
  CHECK(raw() == 13109570281517897720ull);
  raft::detail::jitter_rng rng(5489);
  for (int expected : {7, 2, 7, 9, 0}) CHECK(rng.between(0, 9) == expected);
  for (std::int64_t expected : {310, 2, -455}) CHECK(rng.between<std::int64_t>(-500, 1500) == expected);
  for (double expected : {0x1.0a91bd4261043p-1, 0x1.60f140b20cb82p-2, 0x1.18c6bb78b99fep-2})
    CHECK(rng.unit() == expected);
}
