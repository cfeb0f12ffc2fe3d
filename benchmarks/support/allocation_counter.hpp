// benchmarks/support/allocation_counter.hpp - counts every heap allocation of the process.
//
// On glibc this header interposes malloc and friends (glibc supports replacing them, see
// "Replacing malloc" in its manual) and forwards to glibc's own allocator, so every allocation of
// the process is counted: operator new, Asio's handler memory (which calls aligned_alloc
// directly), everything. Each thread bumps its own slot with a plain load and store (no atomic
// read-modify-write on the hot path); allocation_count() sums the slots.
// Not under sanitizers (they replace malloc themselves), nor with -DRAFT_BENCH_NO_MALLOC_COUNT.
//
// It defines malloc itself: include it from exactly one translation unit of a program.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>  // malloc's own declarations come before the definitions below
#include <optional>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define RAFT_BENCH_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RAFT_BENCH_SANITIZED 1
#endif
#if defined(__GLIBC__) && !defined(RAFT_BENCH_SANITIZED) && !defined(RAFT_BENCH_NO_MALLOC_COUNT)
#define RAFT_BENCH_COUNT_MALLOC 1
#endif

namespace raft_bench {

namespace alloc_detail {
inline constexpr int max_threads = 128;
struct alignas(64) slot {
  std::atomic<std::uint64_t> count{0};
};
inline slot slots[max_threads];
inline std::atomic<int> next_slot{0};

inline void count_one() noexcept {
  thread_local int mine = next_slot.fetch_add(1, std::memory_order_relaxed) % max_threads;
  auto& c = slots[mine].count;
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}
}  // namespace alloc_detail

/// Heap allocations so far, or nullopt where they cannot be counted.
inline std::optional<std::uint64_t> allocation_count() noexcept {
#if defined(RAFT_BENCH_COUNT_MALLOC)
  std::uint64_t total = 0;
  for (auto& s : alloc_detail::slots) total += s.count.load(std::memory_order_relaxed);
  return total;
#else
  return std::nullopt;
#endif
}

}  // namespace raft_bench

#if defined(RAFT_BENCH_COUNT_MALLOC)
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);

void* malloc(std::size_t size) {
  raft_bench::alloc_detail::count_one();
  return __libc_malloc(size);
}
void* calloc(std::size_t n, std::size_t size) {
  raft_bench::alloc_detail::count_one();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t size) {
  raft_bench::alloc_detail::count_one();
  return __libc_realloc(p, size);
}
void* memalign(std::size_t align, std::size_t size) {
  raft_bench::alloc_detail::count_one();
  return __libc_memalign(align, size);
}
void* aligned_alloc(std::size_t align, std::size_t size) {
  raft_bench::alloc_detail::count_one();
  return __libc_memalign(align, size);
}
int posix_memalign(void** out, std::size_t align, std::size_t size) {
  raft_bench::alloc_detail::count_one();
  void* p = __libc_memalign(align, size);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
void free(void* p) { __libc_free(p); }
}
#endif
