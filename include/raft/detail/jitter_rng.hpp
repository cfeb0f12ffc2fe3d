// raft/detail/jitter_rng.hpp - the generator behind a node's election jitter, without <random>.
//
// A node draws each election timeout from [min, max) with a generator seeded from
// options::seed, so the same seed gives the same timeouts and a run can be replayed from its
// seed. This is the 64-bit Mersenne Twister (std::mt19937_64, whose output the C++ standard
// fixes bit for bit) and the unbiased downscaling libstdc++'s std::uniform_int_distribution
// uses for a 64-bit generator (Lemire's nearly divisionless method): on g++ the draws equal
// std::uniform_int_distribution<std::uint64_t>(0, n - 1)(std::mt19937_64(seed)), which
// tests/detail/test_jitter_rng.cpp checks. It exists because <random> (with <cmath> and the
// special functions) costs every user's translation unit a few tenths of a second to parse.
//
// It is also the simulation's generator (raft/testing/network.hpp, the tests' fault drivers):
// std::uniform_int_distribution and std::uniform_real_distribution map a generator's output
// differently in each standard library, while below(), between() and unit() are defined here,
// so a seed replays the same run with libstdc++ and libc++ alike (given __int128; see below()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

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

  /// A uniformly distributed number in [0, range); `range` must be positive. Draws one output
  /// of the generator, or more in the rare case the first would bias the result. Without
  /// __int128 (MSVC) the draws are unbiased but different.
  std::uint64_t below(std::uint64_t range) noexcept {
#if defined(__SIZEOF_INT128__)
    __extension__ typedef unsigned __int128 wide;
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

  /// A uniformly distributed integer in [lo, hi], both ends included; `lo <= hi`. Any range
  /// works, up to every value of T: the full 64-bit range takes one output as it is; any other
  /// is lo + below(hi - lo + 1), computed without overflow. The same numbers as libstdc++'s
  /// std::uniform_int_distribution<T>(lo, hi) on std::mt19937_64.
  template <class T>
    requires(std::is_integral_v<T> && !std::is_same_v<T, bool> && sizeof(T) <= sizeof(std::uint64_t))
  T between(T lo, T hi) noexcept {
    using U = std::make_unsigned_t<T>;
    const auto span = static_cast<std::uint64_t>(static_cast<U>(static_cast<U>(hi) - static_cast<U>(lo)));
    const std::uint64_t offset = span == ~std::uint64_t{0} ? (*this)() : below(span + 1);
    // Modular arithmetic in U, then back to T: well defined (C++20) for every T.
    return static_cast<T>(static_cast<U>(static_cast<U>(lo) + static_cast<U>(offset)));
  }

  /// A uniformly distributed double in [0, 1): the top 53 bits of one output, times 2^-53. Every
  /// value is a multiple of 2^-53, exactly representable, so no rounding can reach 1.
  double unit() noexcept { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }

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
