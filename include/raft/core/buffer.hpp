// raft/core/buffer.hpp - an immutable, reference-counted byte buffer.
//
// A command's bytes are copied once, when it is proposed, into a `buffer`; from then on the log,
// every in-flight message and the state machine share that one allocation. Copying a `buffer`
// copies a pointer, never the payload.
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
  explicit buffer(std::span<const std::byte> bytes)
      : size_(bytes.size()) {
    if (size_ != 0) {
      auto data = std::make_shared_for_overwrite<std::byte[]>(size_);
      std::memcpy(data.get(), bytes.data(), size_);
      data_ = std::move(data);
    }
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
  std::shared_ptr<const std::byte[]> data_;
  std::size_t size_ = 0;
};

}  // namespace v1
}  // namespace raft
