// raft/transport/local.hpp - raft::local_transport, in-process message passing.
//
// Nodes in one process exchange messages through a shared raft::local_network. A message is moved
// into the receiver's mailbox, payloads are shared, never copied. Nodes may run on different
// threads: the mailbox is guarded by a mutex. A receiver with nothing to do parks its completion
// handler in the mailbox; the first message that arrives posts that handler to the receiver's
// executor (one post), and the messages that follow before it runs are taken in the same batch.
// This is the benchmark baseline: it never loses, duplicates or reorders messages between a pair.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "raft/detail/asio_check.hpp"

#include "raft/core/messages.hpp"
#include "raft/detail/log_line.hpp"
#include "raft/detail/suspend.hpp"
#include "raft/detail/unique_function.hpp"

namespace raft {
inline namespace v1 {

class local_transport;

/// The registry that connects the local transports of one process.
class local_network {
 public:
  local_network() = default;
  local_network(const local_network&) = delete;
  local_network& operator=(const local_network&) = delete;

 private:
  friend class local_transport;

  struct mailbox {
    explicit mailbox(const asio::any_io_executor& ex) : executor(ex) {}
    // Other transports may keep a mailbox alive longer than the receiver's io_context, and no
    // Asio object may outlive its io_context: the owning transport empties `executor` and
    // `waiter` when it is destroyed.
    std::mutex mutex;
    asio::any_io_executor executor;             // guarded by mutex
    detail::unique_function<void()> waiter;     // guarded by mutex: a parked receive()
    std::vector<message> queue;                 // guarded by mutex
    bool closed = false;                        // guarded by mutex

    /// Called with the mutex held (`lock`): posts the parked receiver, if any, and unlocks.
    void wake(std::unique_lock<std::mutex>& lock) {
      if (!waiter) return;
      auto h = std::move(waiter);
      waiter = {};
      auto ex = executor;
      lock.unlock();
      asio::post(ex, std::move(h));
    }
  };

  std::shared_ptr<mailbox> open(node_id id, const asio::any_io_executor& ex) {
    std::lock_guard lock(mutex_);
    auto& slot = boxes_[id];
    if (slot && !slot->closed)
      throw std::logic_error(detail::join({"raft::local_network: node ", id, " already has an open transport"}));
    slot = std::make_shared<mailbox>(ex);
    return slot;
  }

  void forget(node_id id, const std::shared_ptr<mailbox>& box) {
    std::lock_guard lock(mutex_);
    auto it = boxes_.find(id);
    if (it != boxes_.end() && it->second == box) boxes_.erase(it);
  }

  std::shared_ptr<mailbox> find(node_id id) {
    std::lock_guard lock(mutex_);
    auto it = boxes_.find(id);
    return it == boxes_.end() ? nullptr : it->second;
  }

  std::mutex mutex_;
  std::map<node_id, std::shared_ptr<mailbox>> boxes_;
};

/// One node's endpoint on a local_network. Models raft::transport.
class local_transport {
 public:
  /// Registers node `self` on `network`; its messages are delivered on `ex` (the node's executor).
  local_transport(local_network& network, node_id self, const asio::any_io_executor& ex)
      : network_(network), self_(self), box_(network.open(self, ex)) {}

  local_transport(const local_transport&) = delete;
  local_transport& operator=(const local_transport&) = delete;
  /// Destroy after the node stopped, on the node's executor or while it does not run.
  ~local_transport() {
    close();
    network_.forget(self_, box_);
    std::lock_guard lock(box_->mutex);
    box_->waiter = {};
    box_->executor = asio::any_io_executor{};
  }

  void send(message m) {
    // Peers' mailboxes are cached, so a send takes the network's lock only for a peer's first
    // message, or after the peer restarted with a new mailbox.
    auto& box = peers_[m.to];
    for (bool fresh = false;; fresh = true) {
      if (!box || fresh) box = network_.find(m.to);
      if (!box) return;  // unknown or stopped node: the message is lost, as on a network
      std::unique_lock lock(box->mutex);
      if (box->closed) {
        if (fresh) return;
        continue;  // the cached mailbox is closed: look for a new one
      }
      box->queue.push_back(std::move(m));
      box->wake(lock);
      return;
    }
  }

  asio::awaitable<bool> receive(std::vector<message>& batch) {
    for (;;) {
      {
        std::lock_guard lock(box_->mutex);
        if (box_->closed) co_return false;
        if (!box_->queue.empty()) {
          batch.swap(box_->queue);
          co_return true;
        }
      }
      co_await detail::suspend(
          [](void* mailbox, detail::resume_fn resume, const asio::any_io_executor&) {
            auto* box = static_cast<local_network::mailbox*>(mailbox);
            std::unique_lock lock(box->mutex);
            box->waiter = std::move(resume);
            if (box->closed || !box->queue.empty()) box->wake(lock);  // arrived meanwhile
          },
          box_.get());
    }
  }

  void close() {
    std::unique_lock lock(box_->mutex);
    if (box_->closed) return;
    box_->closed = true;
    box_->queue.clear();
    box_->wake(lock);
  }

 private:
  local_network& network_;
  node_id self_;
  std::shared_ptr<local_network::mailbox> box_;
  std::map<node_id, std::shared_ptr<local_network::mailbox>> peers_;
};

}  // namespace v1
}  // namespace raft
