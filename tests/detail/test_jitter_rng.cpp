// detail::jitter_rng: the node's election-jitter generator draws exactly what std::mt19937_64
// and (with libstdc++) std::uniform_int_distribution draw, so a seed replays the same trace.
#include <doctest/doctest.h>

#include <cstdint>
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
