// tests/hosts/kv_workload.cpp - concurrent clients for examples/kv's kv_server that record a
// history for the linearizability checker (tests/sim/lincheck).
//
//   kv_workload --servers 1=HOST:PORT,2=HOST:PORT,... --history FILE [--clients 6]
//               [--duration SECONDS] [--keys 4] [--rotate SECONDS] [--op-timeout SECONDS]
//               [--think-ms 10] [--seed N] [--reads log|local]
//
// --clients coroutines (one thread) each run operations back to back until --duration is over:
// get (40%), append (40%) and put (20%) of one of --keys keys. Keys rotate every --rotate
// seconds ("k<epoch>.<j>"), which keeps each key's history short enough to check exhaustively.
// Every value is unique: put "p<client>.<n>", append "a<client>.<n>;" (no spaces, never '~').
//
// One operation, over the kv_server line protocol (examples/kv/README.md):
//   - it is sent to the server believed to lead; `ERR not_leader N` redirects to N (or, with no
//     hint, to the next server), `ERR busy` and refused or timed-out connections retry: none of
//     these applied the command;
//   - `OK <value>` or `OK` is a success (for get, the value read), and so is `NOTFOUND` (a get
//     of an absent key, recorded as the empty value);
//   - `ERR timeout` (no quorum confirmed a read in time): a get is tried again, elsewhere;
//   - `ERR leadership_lost`/`ERR stopped`, or a connection that breaks or stays silent after the
//     command was sent: the outcome is unknown;
//   - no answer by --op-timeout with every attempt certainly not applied: it failed.
// A write with an unknown outcome is recorded `info` (it may take effect at any later time, or
// never) and its client continues under a new name ("c<slot>.<generation>"), since a client has
// one operation in flight. A get that did not succeed is recorded `fail`: a read changes
// nothing, so leaving it out is exact.
//
// The history (one line per operation, in the order they started):
//   <client> <start_ns> <end_ns|-> <put|append|get> <key> <value|~> <ok|fail|info>
// Times are nanoseconds of this process's steady clock since it started; all clients share it.
// --reads local is a deliberately broken client for checking the checker: gets are LOCALGET on a
// random server (that server's state machine as it is, possibly stale), not reads through the
// log; under partitions the history is then expected NOT to be linearizable.
//
// Exit status: 0 the run completed (the verdict is lincheck's), 1 an unexpected reply or error,
// 2 usage.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "../../examples/kv/address_list.hpp"

namespace {

using namespace std::chrono_literals;
using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

const clock_type::time_point epoch = clock_type::now();
std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - epoch).count();
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "kv_workload: %s\n"
               "usage: kv_workload --servers 1=HOST:PORT,... --history FILE [--clients N] [--duration S]\n"
               "                   [--keys K] [--rotate S] [--op-timeout S] [--think-ms MS] [--seed N]\n"
               "                   [--reads log|local]\n",
               why.c_str());
  std::exit(2);
}

struct settings {
  std::map<std::uint64_t, kv::listed_address> servers;
  std::string history;
  int clients = 6;
  double duration = 60;
  int keys = 4;
  double rotate = 3;
  double op_timeout = 4;
  int think_ms = 10;
  std::uint64_t seed = 1;
  bool local_reads = false;  // --reads local: a mutant, for checking that the checker sees stale reads
};

struct record {
  std::string client;
  std::int64_t start = 0;
  std::optional<std::int64_t> end;  // nullopt: '-'
  std::string op, key, value, outcome;
};

enum class result { ok, fail, unknown };

/// One connection to one server, shared with the timers that close it on a deadline.
struct connection {
  explicit connection(const asio::any_io_executor& ex) : socket(ex) {}
  tcp::socket socket;
  std::string in;
  std::uint64_t server = 0;
  bool expired = false;
};

class workload {
 public:
  explicit workload(asio::io_context& io, settings s) : io_(io), s_(std::move(s)) {}

  void start() {
    for (int c = 0; c < s_.clients; ++c) asio::co_spawn(io_, client(c), asio::detached);
  }

  [[nodiscard]] const std::vector<record>& history() const { return history_; }
  [[nodiscard]] int unexpected() const { return unexpected_; }

 private:
  /// Closes the connection's socket at `deadline` unless cancelled first.
  static asio::steady_timer guard(const std::shared_ptr<connection>& c, clock_type::time_point deadline) {
    asio::steady_timer t(c->socket.get_executor(), deadline);
    c->expired = false;
    t.async_wait([c](std::error_code ec) {
      if (ec) return;
      c->expired = true;
      std::error_code ignored;
      c->socket.close(ignored);
    });
    return t;
  }

  asio::awaitable<bool> connect(const std::shared_ptr<connection>& c, std::uint64_t server,
                                clock_type::time_point deadline) {
    std::error_code ec;
    c->socket.close(ec);
    c->socket = tcp::socket(co_await asio::this_coro::executor);
    c->in.clear();
    c->server = server;
    const auto& a = s_.servers.at(server);
    tcp::resolver resolver(co_await asio::this_coro::executor);
    auto endpoints = co_await resolver.async_resolve(a.host, a.port, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return false;
    auto t = guard(c, std::min(deadline, clock_type::now() + 1s));
    co_await asio::async_connect(c->socket, endpoints, asio::redirect_error(asio::use_awaitable, ec));
    t.cancel();
    if (ec || c->expired) {
      c->socket.close(ec);
      co_return false;
    }
    co_return true;
  }

  /// Sends `line`, reads one reply line. nullopt: no reply (and `sent` says whether it may have
  /// reached the server).
  asio::awaitable<std::optional<std::string>> exchange(const std::shared_ptr<connection>& c, const std::string& line,
                                                       clock_type::time_point deadline, bool& sent) {
    std::error_code ec;
    auto t = guard(c, deadline);
    const std::string wire = line + '\n';
    sent = true;  // from here on, the server may have received it
    co_await asio::async_write(c->socket, asio::buffer(wire), asio::redirect_error(asio::use_awaitable, ec));
    std::size_t n = 0;
    if (!ec)
      n = co_await asio::async_read_until(c->socket, asio::dynamic_buffer(c->in), '\n',
                                          asio::redirect_error(asio::use_awaitable, ec));
    t.cancel();
    if (ec || c->expired) {
      c->socket.close(ec);
      co_return std::nullopt;
    }
    std::string reply = c->in.substr(0, n - 1);
    c->in.erase(0, n);
    if (!reply.empty() && reply.back() == '\r') reply.pop_back();
    co_return reply;
  }

  std::uint64_t next_server(std::uint64_t s) const {
    auto it = s_.servers.upper_bound(s);
    return it == s_.servers.end() ? s_.servers.begin()->first : it->first;
  }

  asio::awaitable<void> pause(std::chrono::milliseconds d) {
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    std::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

  /// Runs one command to completion; `value` receives the reply's value on success.
  asio::awaitable<result> run_op(const std::shared_ptr<connection>& c, std::uint64_t& target, const std::string& line,
                                 std::string& value) {
    const auto deadline = clock_type::now() + std::chrono::milliseconds(std::int64_t(s_.op_timeout * 1000));
    for (;;) {
      if (clock_type::now() >= deadline) co_return result::fail;  // nothing was ever applied
      if (!c->socket.is_open() || c->server != target) {
        if (!co_await connect(c, target, deadline)) {
          target = next_server(target);
          co_await pause(50ms);
          continue;
        }
      }
      bool sent = false;
      const auto reply = co_await exchange(c, line, deadline, sent);
      if (!reply) co_return result::unknown;
      if (*reply == "OK" || reply->starts_with("OK ")) {
        value = reply->size() > 3 ? reply->substr(3) : std::string();
        co_return result::ok;
      }
      if (*reply == "NOTFOUND") {  // a key without a value (values are never empty)
        value.clear();
        co_return result::ok;
      }
      if (reply->starts_with("ERR not_leader")) {
        const std::uint64_t hint = std::strtoull(reply->c_str() + 14, nullptr, 10);
        if (hint != 0 && hint != target && s_.servers.contains(hint)) {
          target = hint;
        } else {
          target = next_server(target);
          co_await pause(50ms);
        }
        continue;
      }
      if (reply->starts_with("ERR busy")) {
        co_await pause(20ms);
        continue;
      }
      if (reply->starts_with("ERR timeout")) {  // no quorum confirmed the read index in time
        if (!line.starts_with("GET ")) co_return result::unknown;
        target = next_server(target);  // a get read nothing: try again, elsewhere
        co_await pause(50ms);
        continue;
      }
      if (reply->starts_with("ERR leadership_lost") || reply->starts_with("ERR stopped")) co_return result::unknown;
      std::fprintf(stderr, "kv_workload: unexpected reply to '%s': %s\n", line.c_str(), reply->c_str());
      ++unexpected_;
      co_return result::fail;
    }
  }

  asio::awaitable<void> client(int slot) {
    // splitmix64: a small generator (a coroutine frame holding mt19937_64's 5 KB of state
    // trips GCC 12's -Wmismatched-new-delete on the frame's class-specific operator delete).
    std::uint64_t state = s_.seed * 7919 + std::uint64_t(slot);
    auto rng = [&state] {
      std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      return z ^ (z >> 31);
    };
    int generation = 0;
    std::uint64_t target = s_.servers.begin()->first;
    auto c = std::make_shared<connection>(co_await asio::this_coro::executor);
    auto local = std::make_shared<connection>(co_await asio::this_coro::executor);  // --reads local
    const auto end = epoch + std::chrono::milliseconds(std::int64_t(s_.duration * 1000));
    for (std::uint64_t n = 1; clock_type::now() < end; ++n) {
      record r;
      r.client = "c" + std::to_string(slot) + "." + std::to_string(generation);
      const auto key_epoch = std::int64_t(double(now_ns()) / 1e9 / s_.rotate);
      r.key = "k" + std::to_string(key_epoch) + "." + std::to_string(rng() % std::uint64_t(s_.keys));
      const auto dice = rng() % 10;
      std::string line;
      if (dice < 4) {
        r.op = "get";
        line = (s_.local_reads ? "LOCALGET " : "GET ") + r.key;
      } else if (dice < 8) {
        r.op = "append";
        r.value = "a" + std::to_string(slot) + "." + std::to_string(n) + ";";
        line = "APPEND " + r.key + " " + r.value;
      } else {
        r.op = "put";
        r.value = "p" + std::to_string(slot) + "." + std::to_string(n);
        line = "PUT " + r.key + " " + r.value;
      }
      r.start = now_ns();
      std::string value;
      result res;
      if (s_.local_reads && r.op == "get") {
        // A server's own state machine, whichever server: not linearizable (may be stale).
        std::uint64_t any = std::next(s_.servers.begin(), std::ptrdiff_t(rng() % s_.servers.size()))->first;
        res = co_await run_op(local, any, line, value);
      } else {
        res = co_await run_op(c, target, line, value);
      }
      const std::int64_t finished = now_ns();
      if (res == result::ok) {
        r.end = finished;
        r.outcome = "ok";
        if (r.op == "get") r.value = value.empty() ? "~" : value;
      } else if (res == result::fail || r.op == "get") {
        r.end = finished;
        r.outcome = "fail";
        if (r.op == "get") r.value = "~";
      } else {
        r.outcome = "info";  // may take effect at any time: no end
        ++generation;       // this client's operation is still in flight: continue as a new client
      }
      history_.push_back(std::move(r));
      if (s_.think_ms > 0) co_await pause(std::chrono::milliseconds(rng() % std::uint64_t(s_.think_ms + 1)));
    }
    std::error_code ignored;
    c->socket.close(ignored);
    local->socket.close(ignored);
  }

  asio::io_context& io_;
  settings s_;
  std::vector<record> history_;
  int unexpected_ = 0;
};

settings parse(int argc, char** argv) {
  settings s;
  auto number = [](std::string_view text, const char* what) {
    char* end = nullptr;
    const std::string t(text);
    const double v = std::strtod(t.c_str(), &end);
    if (t.empty() || *end != '\0' || !(v >= 0)) usage(std::string("bad ") + what + ": '" + t + "'");
    return v;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage(std::string(arg) + " needs a value");
      return argv[++i];
    };
    if (arg == "--servers") {
      try {
        s.servers = kv::parse_address_list(value());
      } catch (const std::invalid_argument& e) {
        usage(std::string("--servers: ") + e.what());
      }
    } else if (arg == "--history") {
      s.history = std::string(value());
    } else if (arg == "--clients") {
      s.clients = int(number(value(), "--clients"));
    } else if (arg == "--duration") {
      s.duration = number(value(), "--duration");
    } else if (arg == "--keys") {
      s.keys = int(number(value(), "--keys"));
    } else if (arg == "--rotate") {
      s.rotate = number(value(), "--rotate");
    } else if (arg == "--op-timeout") {
      s.op_timeout = number(value(), "--op-timeout");
    } else if (arg == "--think-ms") {
      s.think_ms = int(number(value(), "--think-ms"));
    } else if (arg == "--seed") {
      s.seed = std::uint64_t(number(value(), "--seed"));
    } else if (arg == "--reads") {
      const std::string_view v = value();
      if (v != "log" && v != "local") usage("--reads is log or local");
      s.local_reads = v == "local";
    } else {
      usage("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (s.servers.empty()) usage("--servers is required");
  if (s.history.empty()) usage("--history is required");
  if (s.clients < 1 || s.keys < 1 || s.rotate <= 0 || s.op_timeout <= 0) usage("bad numbers");
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const settings s = parse(argc, argv);
  try {
    asio::io_context io;
    workload w(io, s);
    w.start();
    io.run();

    std::ofstream out(s.history, std::ios::trunc);
    out << "# kv_workload: " << s.clients << " clients, " << s.duration << " s, " << s.keys << " keys rotating every "
        << s.rotate << " s, seed " << s.seed << "\n";
    std::vector<record> history = w.history();
    std::stable_sort(history.begin(), history.end(), [](const record& a, const record& b) { return a.start < b.start; });
    std::map<std::string, int> counts;
    for (const record& r : history) {
      out << r.client << ' ' << r.start << ' ' << (r.end ? std::to_string(*r.end) : "-") << ' ' << r.op << ' ' << r.key
          << ' ' << (r.value.empty() ? "~" : r.value) << ' ' << r.outcome << '\n';
      ++counts[r.op + " " + r.outcome];
    }
    out.close();
    if (!out) throw std::runtime_error("cannot write " + s.history);
    std::printf("kv_workload: %zu operations:", w.history().size());
    for (const auto& [what, n] : counts) std::printf(" %s %d,", what.c_str(), n);
    std::printf(" written to %s\n", s.history.c_str());
    return w.unexpected() == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kv_workload: %s\n", e.what());
    return 1;
  }
}
