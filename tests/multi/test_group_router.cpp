// raft::group_router and raft::group_transport on a scripted shared transport: routing by group,
// the group stamped on what a group sends, the unknown-group handler, groups opened and closed at
// run time, and one flush of the shared transport for every group that flushed in a turn.
#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "raft/detail/signal.hpp"
#include "raft/multi/group_router.hpp"

namespace {

using raft::group_id;
using raft::message;
using raft::node_id;

/// A shared transport driven by the test: inject() is what arrives; what is sent is recorded.
struct scripted_transport {
  explicit scripted_transport(const asio::any_io_executor& ex) : arrived(ex) {}
  void send(message m) { sent.push_back(std::move(m)); }
  asio::awaitable<bool> receive(std::vector<message>& batch) {
    for (;;) {
      if (closed) co_return false;
      if (!incoming.empty()) {
        batch.swap(incoming);
        co_return true;
      }
      co_await arrived.wait();
    }
  }
  void close() {
    closed = true;
    arrived.notify();
  }
  void inject(message m) {
    incoming.push_back(std::move(m));
    arrived.notify();
  }
  std::vector<message> sent;
  std::vector<message> incoming;
  raft::detail::signal arrived;
  bool closed = false;
};

/// The same, with send_batched() and flush(), as tcp_transport has.
struct batching_scripted_transport : scripted_transport {
  using scripted_transport::scripted_transport;
  void send_batched(message m) { batched.push_back(std::move(m)); }
  void flush() { ++flushes; }
  std::vector<message> batched;
  int flushes = 0;
};

static_assert(raft::transport<raft::group_transport<scripted_transport>>);
static_assert(!raft::batching_transport<raft::group_transport<scripted_transport>>,
              "a group over a transport without batching has none either");
static_assert(raft::batching_transport<raft::group_transport<batching_scripted_transport>>);

message heartbeat(group_id g, node_id from, node_id to) {
  message m{from, to, raft::append_request{raft::term_t{1}, {}, {}, {}, {}, 0}};
  m.group = g;
  return m;
}

/// What one receive() of a group got: nullopt until it completes.
struct received {
  std::optional<bool> open;
  std::vector<message> batch;
};

template <class Transport>
std::shared_ptr<received> receive_once(asio::io_context& io, raft::group_transport<Transport>& t) {
  auto out = std::make_shared<received>();
  asio::co_spawn(
      io,
      [&t, out]() -> asio::awaitable<void> { out->open = co_await t.receive(out->batch); },
      asio::detached);
  return out;
}

}  // namespace

TEST_CASE("group_router: each message reaches its own group's transport, and no other") {
  asio::io_context io;
  scripted_transport shared(io.get_executor());
  raft::group_router<scripted_transport> router(shared, io.get_executor());
  asio::co_spawn(io, router.run(), asio::detached);
  raft::group_transport<scripted_transport> g1(router, group_id{1}), g2(router, group_id{2}), g3(router, group_id{3});
  auto r1 = receive_once(io, g1);
  auto r2 = receive_once(io, g2);
  auto r3 = receive_once(io, g3);
  io.poll();

  shared.inject(heartbeat(group_id{2}, node_id{5}, node_id{1}));
  shared.inject(heartbeat(group_id{1}, node_id{6}, node_id{1}));
  shared.inject(heartbeat(group_id{2}, node_id{7}, node_id{1}));
  shared.inject(heartbeat(group_id{9}, node_id{5}, node_id{1}));  // not open here
  io.poll();

  REQUIRE(r1->open == true);
  REQUIRE(r1->batch.size() == 1);
  CHECK(r1->batch[0].from == node_id{6});
  REQUIRE(r2->open == true);
  REQUIRE(r2->batch.size() == 2);
  CHECK(r2->batch[0].from == node_id{5});
  CHECK(r2->batch[1].from == node_id{7});
  CHECK_FALSE(r3->open.has_value());
  CHECK(router.stats().routed == 3);
  CHECK(router.stats().unknown_group == 1);
  router.close();
  io.poll();
  CHECK(r3->open == false);
}

TEST_CASE("group_transport: what a group sends carries its group, through the shared transport") {
  asio::io_context io;
  scripted_transport shared(io.get_executor());
  raft::group_router<scripted_transport> router(shared, io.get_executor());
  raft::group_transport<scripted_transport> g7(router, group_id{7}), g8(router, group_id{8});
  g7.send(message{node_id{1}, node_id{2}, raft::timeout_now{raft::term_t{3}}});
  g8.send(message{node_id{1}, node_id{3}, raft::timeout_now{raft::term_t{4}}});
  REQUIRE(shared.sent.size() == 2);
  CHECK(shared.sent[0].group == group_id{7});
  CHECK(shared.sent[0].to == node_id{2});
  CHECK(shared.sent[1].group == group_id{8});
  g7.close();
  g7.send(message{node_id{1}, node_id{2}, raft::timeout_now{raft::term_t{3}}});
  CHECK(shared.sent.size() == 2);  // a closed group sends nothing
}

TEST_CASE("group_router: a group opens once at a time, and can open again after it closed") {
  asio::io_context io;
  scripted_transport shared(io.get_executor());
  raft::group_router<scripted_transport> router(shared, io.get_executor());
  {
    raft::group_transport<scripted_transport> a(router, group_id{4});
    CHECK(router.is_open(group_id{4}));
    CHECK_THROWS_AS(raft::group_transport<scripted_transport>(router, group_id{4}), std::logic_error);
  }
  CHECK_FALSE(router.is_open(group_id{4}));
  CHECK(router.groups() == 0);
  raft::group_transport<scripted_transport> again(router, group_id{4});
  CHECK(router.is_open(group_id{4}));
}

TEST_CASE("group_router: the unknown-group handler may open the group, which then gets the message") {
  asio::io_context io;
  scripted_transport shared(io.get_executor());
  raft::group_router<scripted_transport> router(shared, io.get_executor());
  asio::co_spawn(io, router.run(), asio::detached);
  std::vector<std::unique_ptr<raft::group_transport<scripted_transport>>> created;
  std::vector<group_id> asked;
  router.on_unknown_group([&](const message& m) {
    asked.push_back(m.group);
    if (m.group == group_id{11}) created.push_back(std::make_unique<raft::group_transport<scripted_transport>>(router, m.group));
  });
  shared.inject(heartbeat(group_id{11}, node_id{2}, node_id{1}));
  shared.inject(heartbeat(group_id{12}, node_id{2}, node_id{1}));
  shared.inject(heartbeat(group_id{11}, node_id{3}, node_id{1}));
  io.poll();
  CHECK(asked == std::vector<group_id>{group_id{11}, group_id{12}});  // 11 asked once: open after that
  REQUIRE(created.size() == 1);
  auto r = receive_once(io, *created[0]);
  io.poll();
  REQUIRE(r->open == true);
  CHECK(r->batch.size() == 2);
  CHECK(router.stats().unknown_group == 1);
  router.close();
  io.poll();
}

TEST_CASE("group_router: the groups that flush in one turn make one flush of the shared transport") {
  asio::io_context io;
  batching_scripted_transport shared(io.get_executor());
  raft::group_router<batching_scripted_transport> router(shared, io.get_executor());
  std::vector<std::unique_ptr<raft::group_transport<batching_scripted_transport>>> groups;
  for (std::uint64_t g = 1; g <= 50; ++g)
    groups.push_back(std::make_unique<raft::group_transport<batching_scripted_transport>>(router, group_id{g}));
  for (auto& g : groups) {
    g->send_batched(message{node_id{1}, node_id{2}, raft::timeout_now{raft::term_t{1}}});
    g->flush();
  }
  CHECK(shared.flushes == 0);  // not yet: after the turn
  io.poll();
  CHECK(shared.flushes == 1);
  CHECK(shared.batched.size() == 50);
  CHECK(shared.batched[49].group == group_id{50});
  groups[3]->flush();
  io.restart();
  io.poll();
  CHECK(shared.flushes == 2);
  CHECK(router.stats().flushes == 2);
}

TEST_CASE("group_transport: closing one group ends its receive only; closing the router ends all") {
  asio::io_context io;
  scripted_transport shared(io.get_executor());
  raft::group_router<scripted_transport> router(shared, io.get_executor());
  asio::co_spawn(io, router.run(), asio::detached);
  raft::group_transport<scripted_transport> a(router, group_id{1}), b(router, group_id{2});
  auto ra = receive_once(io, a);
  auto rb = receive_once(io, b);
  io.poll();
  a.close();
  io.poll();
  CHECK(ra->open == false);
  CHECK_FALSE(rb->open.has_value());
  CHECK_FALSE(shared.closed);
  shared.inject(heartbeat(group_id{1}, node_id{2}, node_id{1}));  // to the closed group: dropped
  io.poll();
  CHECK_FALSE(rb->open.has_value());
  router.close();
  io.poll();
  CHECK(rb->open == false);
  CHECK(shared.closed);
}

TEST_CASE("group_router: a received batch wakes all the groups it holds messages for in one post") {
  asio::io_context io;
  scripted_transport shared(io.get_executor());
  raft::group_router<scripted_transport> router(shared, io.get_executor());
  asio::co_spawn(io, router.run(), asio::detached);
  constexpr std::uint64_t groups = 20;
  std::vector<std::unique_ptr<raft::group_transport<scripted_transport>>> transports;
  std::vector<std::shared_ptr<received>> got;
  for (std::uint64_t g = 1; g <= groups; ++g) {
    transports.push_back(std::make_unique<raft::group_transport<scripted_transport>>(router, group_id{g}));
    got.push_back(receive_once(io, *transports.back()));
  }
  io.poll();  // every receiver parked

  for (std::uint64_t g = groups; g >= 1; --g) shared.inject(heartbeat(group_id{g}, node_id{2}, node_id{1}));
  const std::size_t ran = io.poll();
  for (const auto& r : got) {
    REQUIRE(r->open == true);
    CHECK(r->batch.size() == 1);
  }
  // The router's own resumption, then one post for the twenty receivers (not one each).
  CHECK(ran <= 3);
  router.close();
  io.poll();
}

namespace {

/// A delivering group's node, as the router sees it: records the senders of each event's
/// messages (an event ends with `end`), and may act after a message.
struct delivery_log {
  std::vector<std::vector<node_id>> events;  ///< the senders of each ended event, in order
  std::vector<node_id> open_event;           ///< messages handed over since the last end
  std::function<void()> on_message;          ///< run after each message (closes or destroys groups)
  template <class Transport>
  void attach(raft::group_transport<Transport>& t) {
    t.deliver_to(raft::detail::delivery{
        this,
        [](void* self, message& m) noexcept {
          auto& log = *static_cast<delivery_log*>(self);
          log.open_event.push_back(m.from);
          if (log.on_message) log.on_message();
        },
        [](void* self) noexcept {
          auto& log = *static_cast<delivery_log*>(self);
          log.events.push_back(std::move(log.open_event));
          log.open_event.clear();
        }});
  }
};
}  // namespace

TEST_CASE("group_router: a delivering group is handed its messages in order, and one end per batch, without a post") {
  asio::io_context io;
  scripted_transport shared(io.get_executor());
  raft::group_router<scripted_transport> router(shared, io.get_executor());
  asio::co_spawn(io, router.run(), asio::detached);
  raft::group_transport<scripted_transport> g1(router, group_id{1}), g2(router, group_id{2});
  delivery_log d1, d2;
  d1.attach(g1);
  d2.attach(g2);
  io.poll();

  shared.inject(heartbeat(group_id{2}, node_id{5}, node_id{1}));
  shared.inject(heartbeat(group_id{1}, node_id{6}, node_id{1}));
  shared.inject(heartbeat(group_id{2}, node_id{7}, node_id{1}));
  const std::size_t ran = io.poll();
  CHECK(d1.events == std::vector<std::vector<node_id>>{{node_id{6}}});
  CHECK(d2.events == std::vector<std::vector<node_id>>{{node_id{5}, node_id{7}}});
  CHECK(ran == 1);  // the router's own resumption: the groups ran inside it
  CHECK(router.stats().routed == 3);
  shared.inject(heartbeat(group_id{1}, node_id{8}, node_id{1}));
  io.poll();
  CHECK(d1.events.size() == 2);
  CHECK(d2.events.size() == 1);  // nothing new for group 2: no event
  router.close();
  io.poll();
}

TEST_CASE("group_router: a group closed by another group's handler gets no more messages but its event ends; one destroyed gets nothing") {
  asio::io_context io;
  scripted_transport shared(io.get_executor());
  raft::group_router<scripted_transport> router(shared, io.get_executor());
  asio::co_spawn(io, router.run(), asio::detached);
  auto g1 = std::make_unique<raft::group_transport<scripted_transport>>(router, group_id{1});
  auto g2 = std::make_unique<raft::group_transport<scripted_transport>>(router, group_id{2});
  auto g3 = std::make_unique<raft::group_transport<scripted_transport>>(router, group_id{3});
  delivery_log d1, d2, d3;
  d1.attach(*g1);
  d2.attach(*g2);
  d3.attach(*g3);
  d1.on_message = [&] {
    g2.reset();   // destroyed: its mailbox is gone, and it is struck from the groups to end
    g3->close();  // closed: takes no more messages
  };
  io.poll();
  shared.inject(heartbeat(group_id{2}, node_id{4}, node_id{1}));
  shared.inject(heartbeat(group_id{3}, node_id{4}, node_id{1}));
  shared.inject(heartbeat(group_id{1}, node_id{4}, node_id{1}));
  shared.inject(heartbeat(group_id{3}, node_id{5}, node_id{1}));
  shared.inject(heartbeat(group_id{2}, node_id{5}, node_id{1}));
  io.poll();
  CHECK(d1.events == std::vector<std::vector<node_id>>{{node_id{4}}});
  CHECK(d2.events.empty());  // its first message was handed over, but its event was never ended
  CHECK(d2.open_event == std::vector<node_id>{node_id{4}});
  CHECK(d3.events == std::vector<std::vector<node_id>>{{node_id{4}}});  // ended, without node 5's
  CHECK(router.stats().unknown_group == 2);  // the messages after the close and the destruction
  CHECK_FALSE(router.is_open(group_id{2}));
  router.close();
  io.poll();
}

TEST_CASE("group_router: messages that arrived before a group asked for delivery are handed over in a later turn") {
  asio::io_context io;
  scripted_transport shared(io.get_executor());
  raft::group_router<scripted_transport> router(shared, io.get_executor());
  asio::co_spawn(io, router.run(), asio::detached);
  raft::group_transport<scripted_transport> g1(router, group_id{1});
  shared.inject(heartbeat(group_id{1}, node_id{2}, node_id{1}));
  shared.inject(heartbeat(group_id{1}, node_id{3}, node_id{1}));
  io.poll();  // queued: nobody receives yet
  delivery_log d1;
  d1.attach(g1);  // posts the late delivery
  CHECK(d1.open_event.empty());  // not from inside deliver_to() (a node calls it from start())
  SUBCASE("handed over, then the event ends") {
    io.poll();
    CHECK(d1.events == std::vector<std::vector<node_id>>{{node_id{2}, node_id{3}}});
  }
  SUBCASE("a group closed before then is handed nothing and has no event to end") {
    g1.close();  // (a node that stops at once: the node may be gone when the post runs)
    io.poll();
    CHECK(d1.open_event.empty());
    CHECK(d1.events.empty());
  }
  router.close();
  io.poll();
}
