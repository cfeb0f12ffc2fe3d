// A node on a file_storage: a single-voter cluster on real time proposes commands, stops, and a
// new node on the same directory applies the same commands again once it leads. The verdicts are
// about what was applied, never about time; the deadlines only keep a broken build from hanging.
#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "raft/raft.hpp"
#include "raft/storage/file.hpp"
#include "raft/testing/kv_state_machine.hpp"
#include "storage_support.hpp"

using namespace raft;
using namespace std::chrono_literals;
using kv = raft::testing::kv_state_machine;
using file_node = node<kv, file_storage, local_transport>;

namespace {

struct run_result {
  std::vector<std::string> replies;   // what each proposal returned ("error" for a failure)
  std::uint64_t hash_before = 0;      // state machine after re-applying the old log
  std::uint64_t count_before = 0;
  index_t applied_before{0};
  bool became_leader = false;
  std::exception_ptr failure;
};

/// Starts a node (id 1, sole voter) on `dir`, waits until it leads and has applied its log up to
/// `replay_to`, proposes `commands`, then stops it.
run_result run_node(const std::filesystem::path& dir, index_t replay_to, const std::vector<buffer>& commands,
                    file_storage_options so = {}, std::atomic<bool>* fail_after_leading = nullptr) {
  asio::io_context io;
  kv sm;
  file_storage store(dir, so);
  local_network net;
  local_transport transport(net, node_id{1}, io.get_executor());
  options o;
  o.id = node_id{1};
  o.bootstrap = configuration{{node_id{1}}, {}, {}};
  o.election_timeout_min = 20ms;
  o.election_timeout_max = 40ms;
  o.heartbeat_interval = 5ms;
  file_node n(io.get_executor(), o, sm, store, transport);
  run_result out;
  bool finished = false;
  std::exception_ptr error;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        n.start();
        asio::steady_timer t(io);
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        while ((n.role() != role::leader || n.applied_index() < replay_to) &&
               std::chrono::steady_clock::now() < deadline) {
          t.expires_after(2ms);
          co_await t.async_wait(asio::use_awaitable);
        }
        out.became_leader = n.role() == role::leader;
        out.hash_before = sm.hash();
        out.count_before = sm.applied_count();
        out.applied_before = n.applied_index();
        if (fail_after_leading) *fail_after_leading = true;
        for (const auto& c : commands) {
          auto r = co_await n.async_propose(c.bytes());
          out.replies.push_back(r ? *r : "error");
        }
        out.failure = n.failure();
        co_await n.async_stop();
      },
      [&](std::exception_ptr e) {
        error = e;
        finished = true;
      });
  io.run_for(60s);
  REQUIRE(finished);
  if (error) std::rethrow_exception(error);
  return out;
}

}  // namespace

TEST_CASE("a node restarted on the same file_storage directory re-applies the same commands") {
  storage_test::temp_dir dir;
  std::vector<buffer> first;
  for (int k = 0; k < 20; ++k) first.push_back(kv::put("k" + std::to_string(k % 7), "v" + std::to_string(k)));
  first.push_back(kv::append("k0", "-tail"));

  const run_result a = run_node(dir.path(), index_t{0}, first);
  REQUIRE(a.became_leader);
  REQUIRE(a.replies.size() == first.size());
  CHECK(a.replies[0] == "");       // k0 was empty
  CHECK(a.replies[7] == "v0");     // put k0 again: the previous value
  CHECK(a.replies.back() == "v14-tail");
  CHECK_FALSE(a.failure);

  // Reopen: bootstrap config (1) + no-op (2) + 21 commands = index 23 at least.
  std::uint64_t hash_after_first = 0;
  {
    kv replay;
    // The same commands at the same indices give the same hash; compute it from the storage.
    file_storage s(dir.path());
    const auto ps = s.load();
    CHECK(ps.state.term >= term_t{1});
    std::size_t commands = 0;
    for (const auto& e : ps.entries)
      if (e.kind == entry_kind::command) {
        (void)replay.apply(e.index, e.data.bytes());
        ++commands;
      }
    CHECK(commands == first.size());
    hash_after_first = replay.hash();
    CHECK(replay.find("k0") == std::optional<std::string>("v14-tail"));
  }

  const std::vector<buffer> second{kv::get("k0"), kv::put("k1", "new")};
  const run_result b = run_node(dir.path(), index_t{23}, second);
  REQUIRE(b.became_leader);
  CHECK(b.count_before == first.size());     // every old command applied again, once
  CHECK(b.hash_before == hash_after_first);  // the same commands at the same indices
  REQUIRE(b.replies.size() == 2);
  CHECK(b.replies[0] == "v14-tail");
  CHECK(b.replies[1] == "v15");
  CHECK_FALSE(b.failure);
}

TEST_CASE("a node whose file_storage fails to sync stops (fail-stop)") {
  storage_test::temp_dir dir;
  std::atomic<bool> fail{false};
  file_storage_options so;
  so.sync_hook = [&](int fd) {
    if (fail.load()) {
      errno = EIO;
      return -1;
    }
    return ::fdatasync(fd);
  };
  const run_result r = run_node(dir.path(), index_t{0}, {kv::put("a", "1"), kv::put("b", "2")}, so, &fail);
  REQUIRE(r.became_leader);
  REQUIRE(r.replies.size() == 2);
  CHECK(r.replies[0] == "error");
  CHECK(r.replies[1] == "error");
  REQUIRE(r.failure);
  CHECK_THROWS_AS(std::rethrow_exception(r.failure), std::system_error);
}
