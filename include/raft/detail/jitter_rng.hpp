// raft/detail/jitter_rng.hpp - the generator behind a node's election jitter, without <random>.
//
// A node draws each election timeout from [min, max) with a generator seeded from
// options::seed, so the same seed gives the same trace (design brief §2). This is the 64-bit
// Mersenne Twister (std::mt19937_64, whose output the C++ standard fixes bit for bit) and the
// unbiased downscaling libstdc++'s std::uniform_int_distribution uses for a 64-bit generator
// (Lemire's nearly divisionless method): on g++ the draws equal
// std::uniform_int_distribution<std::uint64_t>(0, n - 1)(std::mt19937_64(seed)), which
// tests/detail/test_jitter_rng.cpp checks. It exists because <random> (with <cmath> and the
// special functions) costs every user's translation unit a few tenths of a second to parse.
#pragma once

#include <cstddef>
#include <cstdint>

namespace raft {
inline namespace v1 {
namespace detail {

class jitter_rng {
 public:
  explicit jitter_rng(std::uint64_t seed) noexcept {
    state_[0] = seed;
    for (std::size_t i = 1; i < n; ++i)
      state_[i] = 6364136223846793005ull * (state_[i - 1] ^ (state_[i - 1] >> 62)) + i;
    next_ = n;
  }

  /// The next output of the generator (std::mt19937_64's operator()).
  std::uint64_t operator()() noexcept {
    if (next_ >= n) twist();
    std::uint64_t z = state_[next_++];
    z ^= (z >> 29) & 0x5555555555555555ull;
    z ^= (z << 17) & 0x71d67fffeda60000ull;
    z ^= (z << 37) & 0xfff7eee000000000ull;
    z ^= z >> 43;
    return z;
  }

  /// A uniformly distributed number in [0, range); `range` must be positive.
  std::uint64_t below(std::uint64_t range) noexcept {
#if defined(__SIZEOF_INT128__)
    using wide = unsigned __int128;
    wide product = wide((*this)()) * wide(range);
    auto low = static_cast<std::uint64_t>(product);
    if (low < range) {
      const std::uint64_t threshold = (0 - range) % range;
      while (low < threshold) {
        product = wide((*this)()) * wide(range);
        low = static_cast<std::uint64_t>(product);
      }
    }
    return static_cast<std::uint64_t>(product >> 64);
#else
    // Rejection sampling: unbiased, but not the same draws as libstdc++.
    const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % range + 1) % range;
    std::uint64_t x;
    do x = (*this)(); while (x > limit);
    return x % range;
#endif
  }

 private:
  static constexpr std::size_t n = 312;
  static constexpr std::size_t m = 156;
  static constexpr std::uint64_t upper_mask = ~std::uint64_t{0} << 31;
  static constexpr std::uint64_t lower_mask = ~upper_mask;

  void twist() noexcept {
    for (std::size_t k = 0; k < n; ++k) {
      const std::uint64_t y = (state_[k] & upper_mask) | (state_[(k + 1) % n] & lower_mask);
      state_[k] = state_[(k + m) % n] ^ (y >> 1) ^ ((y & 1) ? 0xb5026f5aa96619e9ull : 0);
    }
    next_ = 0;
  }

  std::uint64_t state_[n];
  std::size_t next_;
};

}  // namespace detail
}  // namespace v1
}  // namespace raft
