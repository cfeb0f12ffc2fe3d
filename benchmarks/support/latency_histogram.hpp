// benchmarks/support/latency_histogram.hpp - the distribution of proposal latencies.
//
// Log-linear buckets, 32 per power of two (relative error <= 1/32), exact below 32 ns. Fixed size,
// no allocation while recording, so recording does not disturb the allocation count.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <string_view>

namespace raft_bench {

class latency_histogram {
 public:
  void record(std::uint64_t ns) noexcept {
    ++counts_[bucket(ns)];
    ++total_;
    sum_ += ns;
    max_ = std::max(max_, ns);
  }
  [[nodiscard]] std::uint64_t total() const noexcept { return total_; }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_; }
  [[nodiscard]] double mean() const noexcept { return total_ ? double(sum_) / double(total_) : 0; }

  /// The value below which a fraction `q` of the samples lie (bucket midpoint).
  [[nodiscard]] double quantile(double q) const noexcept {
    if (total_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(q * double(total_ - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < counts_.size(); ++b) {
      seen += counts_[b];
      if (seen >= rank) return std::min(double(lower(b)) + double(width(b)) / 2, double(max_));
    }
    return double(max_);
  }

  /// Adds another histogram's samples to this one.
  void merge(const latency_histogram& o) noexcept {
    for (std::size_t b = 0; b < counts_.size(); ++b) counts_[b] += o.counts_[b];
    total_ += o.total_;
    sum_ += o.sum_;
    max_ = std::max(max_, o.max_);
  }

  /// The samples as text, "sum max bucket:count ..." (non-empty buckets only), to cross a pipe;
  /// parse() reads it back.
  [[nodiscard]] std::string text() const {
    std::string out = std::to_string(sum_) + " " + std::to_string(max_);
    for (std::size_t b = 0; b < counts_.size(); ++b)
      if (counts_[b]) out += " " + std::to_string(b) + ":" + std::to_string(counts_[b]);
    return out;
  }
  [[nodiscard]] static latency_histogram parse(std::string_view text) {
    latency_histogram h;
    std::istringstream in{std::string(text)};
    in >> h.sum_ >> h.max_;
    std::string word;
    while (in >> word) {
      const auto colon = word.find(':');
      if (colon == std::string::npos) continue;
      const std::size_t b = std::stoull(word.substr(0, colon));
      const std::uint64_t n = std::stoull(word.substr(colon + 1));
      if (b >= h.counts_.size()) continue;
      h.counts_[b] += n;
      h.total_ += n;
    }
    return h;
  }

  /// The distribution: for each non-empty bucket, its upper bound (microseconds) and the
  /// fraction of samples at or below it.
  void write_cdf(std::FILE* f) const {
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < counts_.size(); ++b) {
      if (!counts_[b]) continue;
      seen += counts_[b];
      const double upper = std::min(double(lower(b) + width(b)), double(max_));
      std::fprintf(f, "%.3f %.7f\n", upper / 1e3, double(seen) / double(total_));
    }
  }

 private:
  static constexpr unsigned sub_bits = 5;
  static constexpr std::uint64_t sub = 1u << sub_bits;

  static std::size_t bucket(std::uint64_t v) noexcept {
    if (v < sub) return v;
    const unsigned shift = 63u - unsigned(std::countl_zero(v)) - sub_bits;
    return ((shift + 1) << sub_bits) + ((v >> shift) & (sub - 1));
  }
  static std::uint64_t lower(std::size_t b) noexcept {
    if (b < sub) return b;
    const unsigned shift = unsigned(b >> sub_bits) - 1;
    return (sub + (b & (sub - 1))) << shift;
  }
  static std::uint64_t width(std::size_t b) noexcept {
    return b < sub ? 1 : std::uint64_t{1} << ((b >> sub_bits) - 1);
  }

  std::array<std::uint64_t, 64 * sub> counts_{};
  std::uint64_t total_ = 0, sum_ = 0, max_ = 0;
};

}  // namespace raft_bench
