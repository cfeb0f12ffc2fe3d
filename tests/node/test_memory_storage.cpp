// raft::memory_storage models a disk: only flushed changes survive crash().
#include <cstddef>  // before any Asio header (raft/detail/asio_check.hpp)

#include <doctest/doctest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "raft/storage/memory.hpp"

using namespace raft;

namespace {
log_entry entry(std::uint64_t index, std::uint64_t term) {
  return log_entry{term_t{term}, index_t{index}, entry_kind::command, buffer::from_string("x")};
}
std::vector<std::uint64_t> terms(const std::vector<log_entry>& es) {
  std::vector<std::uint64_t> out;
  for (const auto& e : es) out.push_back(e.term.value);
  return out;
}
void flush(memory_storage& s) {
  asio::io_context ctx;
  asio::co_spawn(ctx, s.flush(), asio::detached);
  ctx.run();
}
}  // namespace

TEST_CASE("memory_storage: appends become durable at flush, and a crash loses the rest") {
  memory_storage s;
  const log_entry first[] = {entry(1, 1), entry(2, 1)};
  s.append(first);
  CHECK(s.entries().empty());
  flush(s);
  const log_entry more[] = {entry(3, 1)};
  s.append(more);
  s.crash();
  CHECK(terms(s.load().entries) == std::vector<std::uint64_t>{1, 1});
}

TEST_CASE("memory_storage: an unflushed truncation is undone by a crash, a flushed one is not") {
  memory_storage s;
  const log_entry base[] = {entry(1, 1), entry(2, 1), entry(3, 1)};
  s.append(base);
  flush(s);

  s.truncate_after(index_t{1});
  const log_entry replacement[] = {entry(2, 2)};
  s.append(replacement);
  s.crash();
  CHECK(terms(s.load().entries) == std::vector<std::uint64_t>{1, 1, 1});

  s.truncate_after(index_t{1});
  s.truncate_after(index_t{0});  // two truncations before one flush
  s.crash();
  CHECK(terms(s.load().entries) == std::vector<std::uint64_t>{1, 1, 1});

  s.truncate_after(index_t{1});
  s.append(replacement);
  flush(s);
  s.crash();
  CHECK(terms(s.load().entries) == std::vector<std::uint64_t>{1, 2});
}

TEST_CASE("memory_storage: term and vote are durable when saved") {
  memory_storage s;
  s.save_hard_state(hard_state{term_t{4}, node_id{2}});
  s.crash();
  CHECK(s.load().state == hard_state{term_t{4}, node_id{2}});
}
