// expect-first: raft::transport
// expect-first: `asio::awaitable<bool> receive(std::vector<raft::message>&)`
// A transport without `receive`.
#include "common.hpp"

struct bad_transport {
  void send(raft::message) {}
  void close() {}
};

void instantiate() { require_transport<bad_transport>(); }
