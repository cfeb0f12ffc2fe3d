// raft/core/buffer.hpp - an immutable, reference-counted byte buffer.
//
// A command's bytes are copied once, when it is proposed, into a `buffer`; from then on the log,
// every in-flight message and the state machine share that one copy. Copying a `buffer` copies a
// pointer, never the payload.
//
// Small payloads (up to 1 KiB) are not allocated one by one: they are carved out of 64 KiB slabs,
// one current slab per thread, and each buffer shares ownership of its slab (a slab is freed
// when its last buffer is). Proposing a 64-byte command costs a heap allocation every thousand
// commands instead of every command. The price: one live buffer keeps its whole slab alive.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

namespace raft {
inline namespace v1 {

class buffer {
 public:
  buffer() noexcept = default;

  /// Copies `bytes` into a new shared allocation.
  explicit buffer(std::span<const std::byte> bytes) : size_(bytes.size()) {
    if (size_ == 0) return;
    data_ = size_ <= slab::max_payload ? slab::current().copy(bytes) : copy_large(bytes);
  }

  /// Copies the characters of `text` (convenience for tests and examples).
  static buffer from_string(std::string_view text) {
    return buffer{std::as_bytes(std::span{text.data(), text.size()})};
  }

  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {data_.get(), size_}; }
  [[nodiscard]] std::string_view as_string() const noexcept {
    return {reinterpret_cast<const char*>(data_.get()), size_};
  }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

  friend bool operator==(const buffer& a, const buffer& b) noexcept {
    return a.size_ == b.size_ && (a.size_ == 0 || std::memcmp(a.data_.get(), b.data_.get(), a.size_) == 0);
  }

 private:
  /// The current slab of this thread: payloads are copied in one after another.
  class slab {
   public:
    static constexpr std::size_t bytes = std::size_t{64} << 10;
    static constexpr std::size_t max_payload = std::size_t{1} << 10;

    static slab& current() {
      thread_local slab s;
      return s;
    }

    /// A copy of `payload` (at most max_payload bytes) that shares ownership of the slab.
    std::shared_ptr<const std::byte[]> copy(std::span<const std::byte> payload) {
      const std::size_t n = (payload.size() + 7) & ~std::size_t{7};
      if (!data_ || bytes - used_ < n) {
        data_ = std::make_shared_for_overwrite<std::byte[]>(bytes);
        used_ = 0;
      }
      std::byte* at = data_.get() + used_;
      used_ += n;
      std::memcpy(at, payload.data(), payload.size());
      return std::shared_ptr<const std::byte[]>(data_, at);  // aliasing: the slab's count
    }

   private:
    std::shared_ptr<std::byte[]> data_;
    std::size_t used_ = 0;
  };

  /// A payload over slab::max_payload gets an allocation of its own. Out of line: inlined into
  /// a caller that copies a constant-size array, GCC 12 at -O3 warns (-Warray-bounds) about this
  /// path even where the size rules it out.
  [[gnu::noinline]] static std::shared_ptr<const std::byte[]> copy_large(
      std::span<const std::byte> bytes) {
    auto data = std::make_shared_for_overwrite<std::byte[]>(bytes.size());
    std::memcpy(data.get(), bytes.data(), bytes.size());
    return data;
  }

  std::shared_ptr<const std::byte[]> data_;
  std::size_t size_ = 0;
};

}  // namespace v1
}  // namespace raft
