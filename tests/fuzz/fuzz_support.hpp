// tests/fuzz/fuzz_support.hpp - what the fuzz harnesses share: a reader that turns the fuzzer's
// bytes into choices, and a check that stops the process with a readable message.
//
// Every harness is a plain `LLVMFuzzerTestOneInput`. Built with clang and -fsanitize=fuzzer it is
// a libFuzzer target (scripts/fuzz.sh); built with any compiler and standalone_main.cpp it runs
// the files it is given, once each (the `fuzz` suite of `meson test` replays the seed corpus
// that way, so the corpus is checked by every build, the sanitizer build included).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

namespace fuzz {

/// Ends the process with a message: libFuzzer reports the abort as a crash and saves the input.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "\nFUZZ CHECK FAILED: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

#define FUZZ_CHECK(cond, what)                                                            \
  do {                                                                                    \
    if (!(cond)) ::fuzz::fail(std::string(__FILE__ ":") + std::to_string(__LINE__) +      \
                              ": " #cond ": " + std::string(what));                       \
  } while (0)

/// Reads choices from the fuzzer's bytes. Past the end every read returns zeros, so any input,
/// however short, is a complete program of choices.
class input {
 public:
  input(const std::uint8_t* data, std::size_t size) noexcept : p_(data), left_(size) {}
  explicit input(std::span<const std::byte> s) noexcept
      : p_(reinterpret_cast<const std::uint8_t*>(s.data())), left_(s.size()) {}

  [[nodiscard]] bool empty() const noexcept { return left_ == 0; }
  [[nodiscard]] std::size_t left() const noexcept { return left_; }

  std::uint8_t u8() noexcept {
    if (left_ == 0) return 0;
    --left_;
    return *p_++;
  }
  std::uint16_t u16() noexcept { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
  std::uint32_t u32() noexcept { return std::uint32_t(u16()) | (std::uint32_t(u16()) << 16); }
  std::uint64_t u64() noexcept { return std::uint64_t(u32()) | (std::uint64_t(u32()) << 32); }
  bool flag() noexcept { return (u8() & 1) != 0; }

  /// A number in [0, n) (n > 0), from one byte (or two when n > 256).
  std::size_t below(std::size_t n) noexcept { return n <= 256 ? u8() % n : u16() % n; }
  /// A number in [lo, hi].
  std::int64_t between(std::int64_t lo, std::int64_t hi) noexcept {
    return lo + static_cast<std::int64_t>(below(static_cast<std::size_t>(hi - lo + 1)));
  }

  /// Up to `n` bytes (fewer if the input ends first).
  std::span<const std::byte> bytes(std::size_t n) noexcept {
    if (n > left_) n = left_;
    std::span<const std::byte> out(reinterpret_cast<const std::byte*>(p_), n);
    p_ += n;
    left_ -= n;
    return out;
  }
  /// A block prefixed by its u16 length.
  std::span<const std::byte> block() noexcept { return bytes(u16()); }

 private:
  const std::uint8_t* p_;
  std::size_t left_;
};

}  // namespace fuzz
