// detail::handler_batch: many handlers posted as one function, called in order with the same
// arguments, none lost when one throws.
#include <doctest/doctest.h>

#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include "raft/detail/handler_batch.hpp"

TEST_CASE("handler_batch: one post runs every handler, in the order pushed, with the same arguments") {
  asio::io_context io;
  raft::detail::handler_batch<int, std::string> batch;
  std::vector<std::string> calls;
  for (int i = 0; i < 5; ++i)
    batch.push_back([&calls, i](int n, std::string s) { calls.push_back(std::to_string(i) + ":" + std::to_string(n) + s); });
  CHECK(batch.size() == 5);
  batch.post(io.get_executor(), 7, "x");
  CHECK(batch.empty());
  CHECK(calls.empty());  // posted, not run inside post()
  CHECK(io.run() == 1);  // one handler for the five
  CHECK(calls == std::vector<std::string>{"0:7x", "1:7x", "2:7x", "3:7x", "4:7x"});
}

TEST_CASE("handler_batch: an empty batch posts nothing, and a batch can be filled again after a post") {
  asio::io_context io;
  raft::detail::handler_batch<> batch;
  batch.post(io.get_executor());
  CHECK(io.run() == 0);
  io.restart();
  int runs = 0;
  batch.push_back([&] { ++runs; });
  batch.post(io.get_executor());
  batch.push_back([&] { runs += 10; });
  batch.post(io.get_executor());
  CHECK(io.run() == 2);
  CHECK(runs == 11);
}

TEST_CASE("handler_batch: a throwing handler leaves run() as its own post would; the rest still run") {
  asio::io_context io;
  raft::detail::handler_batch<> batch;
  std::vector<int> ran;
  batch.push_back([&] { ran.push_back(1); });
  batch.push_back([&] {
    ran.push_back(2);
    throw std::runtime_error("handler 2");
  });
  batch.push_back([&] { ran.push_back(3); });
  batch.push_back([&] { ran.push_back(4); });
  batch.post(io.get_executor());
  CHECK_THROWS_WITH_AS(io.run(), "handler 2", std::runtime_error);
  CHECK(ran == std::vector<int>{1, 2});
  io.restart();
  CHECK(io.run() == 1);  // the two left, reposted as one
  CHECK(ran == std::vector<int>{1, 2, 3, 4});
}

TEST_CASE("handler_batch: a throwing last handler leaves nothing to repost") {
  asio::io_context io;
  raft::detail::handler_batch<> batch;
  int runs = 0;
  batch.push_back([&] { ++runs; });
  batch.push_back([&] {
    ++runs;
    throw std::logic_error("last");
  });
  batch.post(io.get_executor());
  CHECK_THROWS_AS(io.run(), std::logic_error);
  io.restart();
  CHECK(io.run() == 0);
  CHECK(runs == 2);
}
