// expect-first: raft::transport
// expect-first: `asio::awaitable<bool> receive(std::vector<raft::message>&)`
// A transport whose `receive` returns a plain bool instead of asio::awaitable<bool>.
#include <vector>

#include "common.hpp"

struct bad_transport {
  void send(raft::message) {}
  bool receive(std::vector<raft::message>&) { return false; }
  void close() {}
};

void instantiate() { require_transport<bad_transport>(); }
