// examples/kv/server_lifetime.hpp - how a server process (kv_server, sharded_kv_server) runs
// and ends: SIGINT or SIGTERM, or a failure seen by a periodic check, starts its shutdown once,
// with the exit status the process will return.
#pragma once

#include <chrono>
#include <csignal>
#include <functional>
#include <list>
#include <system_error>
#include <utility>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "server_log.hpp"

namespace kv {

class server_lifetime {
 public:
  /// `on_shutdown` runs once, when shutdown begins: it stops taking clients and starts stopping
  /// the Raft side (the process exits when the io_context runs out of work).
  server_lifetime(asio::io_context& io, const server_log& log, std::function<void()> on_shutdown)
      : io_(io), log_(log), on_shutdown_(std::move(on_shutdown)), signals_(io, SIGINT, SIGTERM) {}

  /// SIGINT and SIGTERM begin a shutdown with exit status 0.
  void watch_signals() {
    signals_.async_wait([this](std::error_code ec, int signo) {
      if (ec) return;
      log_.info("signal ", signo, ": shutting down");
      begin_shutdown(0);
    });
  }

  /// Runs `check` every `interval` until shutdown begins (a check may itself begin it).
  void every(std::chrono::steady_clock::duration interval, std::function<asio::awaitable<void>()> check) {
    asio::co_spawn(io_, repeat(timers_.emplace_back(io_), interval, std::move(check)), asio::detached);
  }

  /// The first call cancels the signal wait and the periodic checks and calls on_shutdown;
  /// later calls do nothing (the first status stands).
  void begin_shutdown(int exit_code) {
    if (shutting_down_) return;
    shutting_down_ = true;
    exit_code_ = exit_code;
    std::error_code ignored;
    signals_.cancel(ignored);
    for (auto& t : timers_) t.cancel();
    on_shutdown_();
  }

  [[nodiscard]] bool shutting_down() const { return shutting_down_; }
  [[nodiscard]] int exit_code() const { return exit_code_; }

 private:
  asio::awaitable<void> repeat(asio::steady_timer& timer, std::chrono::steady_clock::duration interval,
                               std::function<asio::awaitable<void>()> check) {
    std::error_code ec;
    while (!shutting_down_) {
      timer.expires_after(interval);
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!shutting_down_) co_await check();
    }
  }

  asio::io_context& io_;
  const server_log& log_;
  std::function<void()> on_shutdown_;
  asio::signal_set signals_;
  std::list<asio::steady_timer> timers_;  // one per periodic check (a list: their addresses stay)
  bool shutting_down_ = false;
  int exit_code_ = 0;
};

}  // namespace kv
