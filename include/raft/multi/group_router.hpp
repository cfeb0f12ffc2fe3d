// raft/multi/group_router.hpp - many Raft groups of one process over one transport.
//
// A process that runs many Raft groups (Multi-Raft: the data sharded over groups whose leaders
// spread over the processes) keeps one replica of each group it serves, a raft::node per group,
// and every replica in the process has the process's node id. All of them share the process's
// one transport (tcp_transport: one connection per pair of processes, whatever the number of
// groups):
//
//   raft::tcp_transport net(ex, my_id, peers);            // the process's one transport
//   raft::group_router router(net, ex);                   // routes its messages by group
//   asio::co_spawn(ex, router.run(), asio::detached);
//   raft::group_transport<raft::tcp_transport> t7(router, raft::group_id{7});
//   raft::node n7(ex, opts, sm7, storage7, t7);           // group 7's replica
//
// How: every message carries its group (raft::message::group, on the wire since codec version
// 3). A group_transport stamps its group on what its node sends and hands it to the shared
// transport; run() receives everything the shared transport receives and hands each message to
// its group's node as it goes (group_transport::deliver_to(), which raft::node uses), ending
// each of those groups' events once the batch is through: no queue to fill, no coroutine to
// resume per group. For a user that awaits a group's receive() instead, the message goes into
// the group's mailbox, and the receive() is woken. A message for a group that is not
// open here goes to the unknown-group handler, which may open the group (a replica created on
// demand, when a new group's leader first contacts this process); otherwise it is dropped, as
// a network drops a message to a stopped node.
//
// One write per peer for many groups: when the shared transport batches (send_batched() and
// flush(), as tcp_transport does), a group's flush() does not write at once. The router posts
// one flush of the shared transport, which runs after the groups woken in the same turn have
// handled their messages: the messages of every group to the same peer go out in one write.
//
// Threading: the router, its groups' transports and their nodes all run on one executor, the
// shared transport's (single-threaded: an io_context run by one thread, or a strand). A process
// that wants more cores runs more routers, each over a transport of its own.
//
// Groups come and go at run time: construct a group_transport to open a group, stop its node and
// destroy the group_transport to close it (its mailbox is dropped with what it held).
//
// Liveness, for quiesced groups (options::quiesce: an idle group's followers stop their election
// timers and count on being told when their leader's process dies). With
// group_router_options::liveness_interval set, the router sends each watched peer process a ping
// every interval, and reports a peer from which nothing (ping or group message) arrived for
// liveness_timeout to on_peer_down, once, and to on_peer_up when it is heard from again. Wire
// on_peer_down to node::peer_down() of every group of the process. A ping is the smallest message
// there is (an empty vote_response) addressed to group 0, which is the router's own: no group can
// open it, and no node ever sees a ping. One ping per pair of processes per interval is all an
// idle process sends, whatever its number of groups.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

#include "raft/detail/asio_check.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "raft/concepts.hpp"
#include "raft/core/messages.hpp"
#include "raft/core/types.hpp"
#include "raft/detail/handler_batch.hpp"
#include "raft/detail/log_line.hpp"
#include "raft/detail/suspend.hpp"

namespace raft {
inline namespace v1 {

/// A transport that can hold messages until a flush (tcp_transport does).
template <class T>
concept batching_transport = transport<T> && requires(T& t, message m) {
  t.send_batched(std::move(m));
  t.flush();
};

/// The router's settings. Liveness is off unless `liveness_interval` is positive.
struct group_router_options {
  node_id self;                                 ///< this process's node id (the pings' sender)
  std::vector<node_id> watch;                   ///< the peer processes to ping and watch
  std::chrono::nanoseconds liveness_interval{0};  ///< ping period (0: no liveness)
  std::chrono::nanoseconds liveness_timeout{0};   ///< silence after which a peer is down
};

/// What a group_router did so far.
struct group_router_stats {
  std::uint64_t routed = 0;          ///< messages put into an open group's mailbox
  std::uint64_t unknown_group = 0;   ///< messages for a group not open here, or closed (dropped)
  std::uint64_t flushes = 0;         ///< flushes of the shared transport the router made
  std::uint64_t pings_sent = 0;      ///< liveness pings
  std::uint64_t peers_down = 0;      ///< on_peer_down reports
};

template <transport Transport, class Timer = asio::steady_timer>
class group_transport;

/// Routes the messages of one shared transport to the groups open on it. See the file comment.
/// `Timer` paces the liveness pings (asio::steady_timer; the simulation's virtual_timer).
template <transport Transport, class Timer = asio::steady_timer>
class group_router {
 public:
  /// `shared` is the process's transport: it and this router must outlive every group_transport
  /// opened on the router. Everything runs on `ex` (the shared transport's executor).
  group_router(Transport& shared, asio::any_io_executor ex, group_router_options opts = {})
      : shared_(shared), ex_(std::move(ex)), opts_(std::move(opts)), liveness_timer_(ex_) {
    for (node_id p : opts_.watch) peers_.push_back(watched{p, Timer::clock_type::now(), false});
  }
  group_router(const group_router&) = delete;
  group_router& operator=(const group_router&) = delete;
  ~group_router() { close(); }

  /// Called with a message for a group that is not open here, before it is dropped. The handler
  /// may open that group (construct its group_transport): the message is then delivered to it.
  void on_unknown_group(std::function<void(const message&)> handler) { unknown_ = std::move(handler); }
  /// Called with a watched peer found down (liveness), and with one heard from again after that.
  void on_peer_down(std::function<void(node_id)> handler) { peer_down_ = std::move(handler); }
  void on_peer_up(std::function<void(node_id)> handler) { peer_up_ = std::move(handler); }

  /// The receive loop: co_spawn it on the executor. Returns once the shared transport is closed
  /// (close()). Every group's pending and later receive() then returns false.
  asio::awaitable<void> run() {
    if (opts_.liveness_interval.count() > 0 && !closed_) asio::co_spawn(ex_, liveness_loop(), asio::detached);
    std::vector<message> batch;
    while (co_await shared_.receive(batch)) {
      if (!peers_.empty()) heard_from(batch);
      for (message& m : batch) route(std::move(m));
      batch.clear();
      deliver_ready();
      woken_.post(ex_);  // every receive() this batch readied, in one post
    }
    close();
  }

  /// Closes the shared transport and every group's transport.
  void close() {
    if (closed_) return;
    closed_ = true;
    liveness_timer_.cancel();
    shared_.close();
    for (auto& [id, box] : boxes_) box->close();
  }

  [[nodiscard]] bool is_open(group_id g) const { return boxes_.contains(g); }
  [[nodiscard]] std::size_t groups() const noexcept { return boxes_.size(); }
  [[nodiscard]] const group_router_stats& stats() const noexcept { return stats_; }
  [[nodiscard]] Transport& shared() noexcept { return shared_; }
  [[nodiscard]] const asio::any_io_executor& executor() const noexcept { return ex_; }

 private:
  friend class group_transport<Transport, Timer>;

  struct watched {
    node_id id;
    typename Timer::clock_type::time_point last_heard;
    bool down = false;
  };

  /// One group's mailbox: its node's delivery, or what arrived for it and its parked receive().
  struct mailbox {
    std::vector<message> queue;
    detail::resume_fn waiter;
    asio::any_io_executor waiter_ex;
    detail::delivery deliver;  ///< context null: none asked for
    bool listed = false;       ///< in ready_
    bool handed = false;       ///< handed a message since its last end: its node is in an event
    bool closed = false;

    void wake() {
      if (!waiter) return;
      asio::post(waiter_ex, std::move(waiter));
      waiter = {};
    }
    void close() {
      closed = true;
      queue.clear();
      wake();
    }
  };

  mailbox& open(group_id g) {
    if (g == group_id{0}) throw std::logic_error("raft::group_router: group 0 is the router's own (liveness pings)");
    auto& slot = boxes_[g];
    if (slot)
      throw std::logic_error(detail::join({"raft::group_router: group ", g, " is already open"}));
    slot = std::make_unique<mailbox>();
    if (closed_) slot->closed = true;
    return *slot;
  }

  void forget(group_id g) {
    const auto it = boxes_.find(g);
    if (it == boxes_.end()) return;
    for (auto* list : {&ready_, &delivering_})  // a delivery still to come skips it
      for (mailbox*& box : *list)
        if (box == it->second.get()) box = nullptr;
    boxes_.erase(it);
  }

  void route(message&& m) {
    if (m.group == group_id{0}) return;  // a ping: it has done its work
    auto it = boxes_.find(m.group);
    if (it == boxes_.end() && unknown_) {
      unknown_(m);
      it = boxes_.find(m.group);
    }
    if (it == boxes_.end() || it->second->closed) {
      ++stats_.unknown_group;
      recycle(m);
      return;
    }
    mailbox& box = *it->second;
    ++stats_.routed;
    if (box.deliver.context != nullptr) {
      list(box);
      box.handed = true;
      box.deliver.one(box.deliver.context, m);  // (may destroy other groups: `it` is not used again)
      return;
    }
    box.queue.push_back(std::move(m));
    if (box.waiter && box.waiter_ex == ex_) {
      woken_.push_back(std::move(box.waiter));  // posted with the batch's others
      box.waiter = {};
    } else {
      box.wake();
    }
  }

  /// Ends the event of each listed group that was handed messages (in the order the groups were
  /// listed), after handing over what waited in its queue, if anything did (messages that
  /// arrived before its node started). A group closed after it was handed a message still has
  /// its event ended (its node cannot be gone before this handler ends); one closed before is
  /// handed nothing more, and one destroyed has been struck from the list by forget().
  void deliver_ready() {
    delivering_.swap(ready_);  // groups listed by the handlers called here wait for the next call
    for (mailbox* box : delivering_) {
      if (box == nullptr) continue;
      box->listed = false;
      if (!box->queue.empty()) {  // (a closed group's queue is empty)
        waited_.swap(box->queue);
        box->handed = true;
        for (message& m : waited_) box->deliver.one(box->deliver.context, m);
        waited_.clear();
      }
      if (!box->handed) continue;
      box->handed = false;
      box->deliver.end(box->deliver.context);
    }
    delivering_.clear();
  }

  void list(mailbox& box) {
    if (box.listed) return;
    box.listed = true;
    ready_.push_back(&box);
  }

  /// A delivery outside a received batch (messages that waited for their group's node to start):
  /// posted, so that the node is not called from inside its own start().
  void deliver_later(mailbox& box) {
    list(box);
    asio::post(ex_, [alive = std::weak_ptr<group_router*>(self_)] {
      if (const auto self = alive.lock()) (*self)->deliver_ready();
    });
  }

  /// Every message is a sign of life of its sender: one reading of the clock per batch.
  void heard_from(const std::vector<message>& batch) {
    const auto now = Timer::clock_type::now();
    for (watched& w : peers_) {
      if (std::none_of(batch.begin(), batch.end(), [&](const message& m) { return m.from == w.id; })) continue;
      w.last_heard = now;
      if (w.down) {
        w.down = false;
        if (peer_up_) peer_up_(w.id);
      }
    }
  }

  /// Pings every watched peer each interval, and reports those silent for the timeout.
  asio::awaitable<void> liveness_loop() {
    const auto interval = std::chrono::duration_cast<typename Timer::duration>(opts_.liveness_interval);
    const std::weak_ptr<group_router*> alive(self_);  // a router destroyed meanwhile is not touched
    while (!alive.expired() && !closed_) {
      const auto now = Timer::clock_type::now();
      for (watched& w : peers_) {
        message ping{opts_.self, w.id, vote_response{}};  // group 0
        ++stats_.pings_sent;
        shared_.send(std::move(ping));
        if (!w.down && now - w.last_heard > opts_.liveness_timeout) {
          w.down = true;
          ++stats_.peers_down;
          if (peer_down_) peer_down_(w.id);
        }
      }
      liveness_timer_.expires_after(interval);
      co_await detail::wait_for(liveness_timer_);
    }
  }

  /// A group's flush: one flush of the shared transport, after the groups that run in this turn.
  /// (The posted flush holds a weak reference: a router destroyed before it runs is not touched.)
  void request_flush() {
    if (flush_posted_) return;
    flush_posted_ = true;
    asio::post(ex_, [alive = std::weak_ptr<group_router*>(self_)] {
      const auto self = alive.lock();
      if (!self) return;
      group_router& r = **self;
      r.flush_posted_ = false;
      ++r.stats_.flushes;
      if (!r.closed_) r.shared_.flush();
    });
  }

  Transport& shared_;
  asio::any_io_executor ex_;
  std::unordered_map<group_id, std::unique_ptr<mailbox>> boxes_;
  std::function<void(const message&)> unknown_;
  group_router_options opts_;
  std::vector<watched> peers_;
  std::function<void(node_id)> peer_down_, peer_up_;
  Timer liveness_timer_;
  group_router_stats stats_;
  detail::handler_batch<> woken_;  ///< receivers a received batch readied, posted at its end
  std::vector<mailbox*> ready_;       ///< delivering groups whose event deliver_ready() will end
  std::vector<mailbox*> delivering_;  ///< those deliver_ready() is ending now
  std::vector<message> waited_;       ///< a queue handed over late (its capacity reused)
  std::shared_ptr<group_router*> self_ = std::make_shared<group_router*>(this);
  bool flush_posted_ = false;
  bool closed_ = false;
};

/// One group's transport on a group_router: models raft::transport (and batches when the shared
/// transport does). Its node's messages carry its group; it receives only its group's messages.
/// Not movable (the node holds a reference); destroy it after its node stopped.
template <transport Transport, class Timer>
class group_transport {
 public:
  using router_type = group_router<Transport, Timer>;
  /// Opens group `g` on `router`. Throws std::logic_error if `g` is already open there, or is 0.
  group_transport(router_type& router, group_id g) : router_(router), group_(g), box_(&router.open(g)) {}
  group_transport(const group_transport&) = delete;
  group_transport& operator=(const group_transport&) = delete;
  ~group_transport() {
    box_->close();
    router_.forget(group_);
  }

  [[nodiscard]] group_id group() const noexcept { return group_; }

  void send(message m) {
    if (box_->closed) return;
    m.group = group_;
    router_.shared_.send(std::move(m));
  }

  void send_batched(message m)
    requires batching_transport<Transport>
  {
    if (box_->closed) return;
    m.group = group_;
    router_.shared_.send_batched(std::move(m));
  }

  void flush()
    requires batching_transport<Transport>
  {
    router_.request_flush();
  }

  /// Has the router hand each of this group's messages to `d.one` as it routes the shared
  /// transport's batch, and call `d.end` once that batch is through, on the router's executor,
  /// until the group is closed; receive() is then not used. (raft::node asks for this: no queue
  /// and no coroutine resumption per group per batch.) Messages that arrived before this call
  /// are handed over in a later turn, not from inside it.
  void deliver_to(detail::delivery d) {
    box_->deliver = d;
    if (!box_->queue.empty()) router_.deliver_later(*box_);
  }

  asio::awaitable<bool> receive(std::vector<message>& batch) {
    for (;;) {
      if (box_->closed) co_return false;
      if (!box_->queue.empty()) {
        batch.swap(box_->queue);
        co_return true;
      }
      co_await detail::suspend(
          [](void* context, detail::resume_fn resume, const asio::any_io_executor& ex) {
            auto* box = static_cast<typename router_type::mailbox*>(context);
            box->waiter = std::move(resume);
            box->waiter_ex = ex;
          },
          box_);
    }
  }

  /// Closes this group only: its pending and later receive() return false. The shared transport
  /// stays open for the other groups.
  void close() { box_->close(); }

 private:
  router_type& router_;
  group_id group_;
  typename router_type::mailbox* box_;
};

}  // namespace v1
}  // namespace raft
