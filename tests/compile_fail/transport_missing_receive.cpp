// expect: t.receive
// A transport without `receive`.
#include "common.hpp"

struct bad_transport {
  void send(raft::message) {}
  void close() {}
};

void instantiate() { require_transport<bad_transport>(); }
