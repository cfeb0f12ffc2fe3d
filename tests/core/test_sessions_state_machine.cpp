// Tests of raft/sessions.hpp on its own (no node): frames, apply-once, cached results, stale and
// expired requests, malformed commands, deterministic eviction, snapshots of the session table.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "test_support.hpp"

#include "raft/sessions.hpp"
#include "raft/testing/kv_state_machine.hpp"

using namespace raft;
using kv = raft::testing::kv_state_machine;

namespace {

/// A snapshot-capable state machine for these tests: it appends every command's text to a
/// journal and returns the journal after the command. Its snapshot is a shared immutable copy
/// of the journal, so a source is unaffected by later applies.
class journal {
 public:
  std::string apply(index_t, std::span<const std::byte> cmd) {
    ++applies_;
    auto next = std::make_shared<std::string>(*text_);
    next->append(reinterpret_cast<const char*>(cmd.data()), cmd.size());
    next->push_back(';');
    text_ = std::move(next);
    return *text_;
  }

  class source {
   public:
    explicit source(std::shared_ptr<const std::string> t) : text_(std::move(t)) {}
    std::size_t read(std::span<std::byte> buf) {
      const std::size_t k = std::min(buf.size(), text_->size() - at_);
      for (std::size_t i = 0; i < k; ++i) buf[i] = static_cast<std::byte>((*text_)[at_ + i]);
      at_ += k;
      return k;
    }

   private:
    std::shared_ptr<const std::string> text_;
    std::size_t at_ = 0;
  };
  class sink {
   public:
    explicit sink(journal& j) : j_(&j) {}
    void write(std::span<const std::byte> b) { got_.append(reinterpret_cast<const char*>(b.data()), b.size()); }
    void finish() { j_->text_ = std::make_shared<const std::string>(std::move(got_)); }

   private:
    journal* j_;
    std::string got_;
  };
  source snapshot() { return source(text_); }
  sink restore() { return sink(*this); }

  [[nodiscard]] const std::string& text() const { return *text_; }
  [[nodiscard]] std::uint64_t applies() const { return applies_; }

 private:
  std::shared_ptr<const std::string> text_ = std::make_shared<const std::string>();
  std::uint64_t applies_ = 0;  // this incarnation's applies (not part of the state)
};

static_assert(snapshot_state_machine<journal>);
using jsm = session_state_machine<journal>;
static_assert(state_machine<jsm>);
static_assert(snapshot_state_machine<jsm>);
static_assert(std::is_same_v<apply_result_t<jsm>, session_result<std::string>>);
static_assert(state_machine<session_state_machine<kv>>);
// A session table is snapshotted with its cached results: without a codec for the result
// type, the adapter is a plain state machine.
struct opaque {
  int x = 0;
};
struct opaque_journal : journal {
  opaque apply(index_t i, std::span<const std::byte> c) { return opaque{static_cast<int>(journal::apply(i, c).size())}; }
};
static_assert(snapshot_state_machine<opaque_journal>);
static_assert(state_machine<session_state_machine<opaque_journal>>);
static_assert(!snapshot_state_machine<session_state_machine<opaque_journal>>);
// Nor when the inner state machine cannot be snapshotted.
struct no_snapshots {
  int apply(index_t, std::span<const std::byte>) { return 0; }
};
static_assert(!snapshot_state_machine<session_state_machine<no_snapshots>>);

buffer text(std::string_view s) { return buffer::from_string(s); }

std::vector<std::byte> vec(const buffer& b) { return {b.bytes().begin(), b.bytes().end()}; }

std::vector<std::byte> bytes_of(std::string_view s) {
  std::vector<std::byte> out;
  for (char c : s) out.push_back(static_cast<std::byte>(c));
  return out;
}

/// Applies at consecutive indices, like a log would.
template <class SM>
struct driver {
  SM& sm;
  std::uint64_t next = 2;  // index 1 is the bootstrap configuration entry in a real log
  auto operator()(const buffer& cmd) { return sm.apply(index_t{next++}, cmd.bytes()); }
};

/// The whole snapshot of `sm`, read in chunks of `chunk` bytes.
template <class Source>
std::vector<std::byte> drain(Source& src, std::size_t chunk) {
  std::vector<std::byte> out, buf(chunk);
  for (;;) {
    const std::size_t k = src.read(buf);
    if (k == 0) return out;
    REQUIRE(k <= chunk);
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(k));
  }
}

/// Restores `into` from `bytes`, written in pieces of `piece` bytes.
template <class SM>
void load(SM& into, const std::vector<std::byte>& bytes, std::size_t piece) {
  auto s = into.restore();
  for (std::size_t at = 0; at < bytes.size(); at += piece)
    s.write(std::span<const std::byte>(bytes).subspan(at, std::min(piece, bytes.size() - at)));
  s.finish();
}

}  // namespace

// ---- frames ----------------------------------------------------------------------------------

TEST_CASE("session frames: documented layout, and decoding gives back what was encoded") {
  const buffer req = session_command(client_id{0x0102}, 7, text("hi"));
  const std::vector<std::byte> expected = {
      std::byte{'R'}, std::byte{'S'}, std::byte{1}, std::byte{1},                       // magic, v1, request
      std::byte{0x02}, std::byte{0x01}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0},
      std::byte{7}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0},
      std::byte{'h'}, std::byte{'i'}};
  CHECK(req == buffer{expected});
  auto f = decode_session_frame(req.bytes());
  REQUIRE(f);
  CHECK(f->kind == session_frame_kind::request);
  CHECK(f->client == client_id{0x0102});
  CHECK(f->sequence == 7);
  CHECK(buffer{f->payload} == text("hi"));

  CHECK(session_register().size() == 4);
  REQUIRE(decode_session_frame(session_register().bytes()));
  CHECK(decode_session_frame(session_register().bytes())->kind == session_frame_kind::register_client);
  auto u = decode_session_frame(session_unregister(client_id{9}).bytes());
  REQUIRE(u);
  CHECK(u->kind == session_frame_kind::unregister);
  CHECK(u->client == client_id{9});
  const buffer loose = sessionless_command(text("x"));
  auto s = decode_session_frame(loose.bytes());
  REQUIRE(s);
  CHECK(s->kind == session_frame_kind::sessionless);
  CHECK(buffer{s->payload} == text("x"));
  // An empty payload is a valid request.
  REQUIRE(decode_session_frame(session_command(client_id{1}, 1, std::span<const std::byte>{}).bytes()));

  CHECK_THROWS_AS((void)session_command(client_id{0}, 1, text("x")), std::invalid_argument);
  CHECK_THROWS_AS((void)session_command(client_id{1}, 0, text("x")), std::invalid_argument);
}

TEST_CASE("session frames: anything else is malformed") {
  const buffer good = session_command(client_id{3}, 1, text("payload"));
  auto b = [&] { return vec(good); };
  std::vector<std::vector<std::byte>> bad;
  bad.push_back({});
  bad.push_back(bytes_of("RS"));
  for (std::size_t cut = 0; cut < 20; ++cut) {
    auto x = b();
    x.resize(cut);
    bad.push_back(x);  // cut short
  }
  { auto x = b(); x[0] = std::byte{'r'}; bad.push_back(x); }     // magic
  { auto x = b(); x[2] = std::byte{2}; bad.push_back(x); }       // format version
  { auto x = b(); x[3] = std::byte{0}; bad.push_back(x); }       // kind
  { auto x = b(); x[3] = std::byte{5}; bad.push_back(x); }
  { auto x = b(); for (int i = 4; i < 12; ++i) x[static_cast<std::size_t>(i)] = std::byte{0}; bad.push_back(x); }   // client 0
  { auto x = b(); for (int i = 12; i < 20; ++i) x[static_cast<std::size_t>(i)] = std::byte{0}; bad.push_back(x); }  // sequence 0
  { auto x = vec(session_register()); x.push_back(std::byte{0}); bad.push_back(x); }  // register + junk
  {
    auto x = vec(session_unregister(client_id{4}));
    x.pop_back();
    bad.push_back(x);  // unregister, short
    x.push_back(std::byte{0});
    x.push_back(std::byte{0});
    bad.push_back(x);  // unregister, long
  }
  {
    auto x = vec(session_unregister(client_id{4}));
    for (std::size_t i = 4; i < 12; ++i) x[i] = std::byte{0};
    bad.push_back(x);  // unregister client 0
  }
  // Unframed kv commands: their first byte is the operation (1..4), never 'R'.
  for (const buffer& k : {kv::put("key", "value"), kv::get("k"), kv::del("k"), kv::append("k", "RS")})
    bad.push_back(vec(k));

  jsm sm(8);
  driver<jsm> d{sm};
  for (const auto& x : bad) {
    CAPTURE(x.size());
    CHECK_FALSE(decode_session_frame(x));
    const auto r = d(buffer{x});
    CHECK(r.outcome() == session_result<std::string>::kind::failed);
    CHECK(r.error() == session_errc::malformed);
  }
  CHECK(sm.inner().applies() == 0);
  CHECK(sm.session_count() == 0);
}

// ---- apply -----------------------------------------------------------------------------------

TEST_CASE("a request is applied once; its retry gets the cached result; older ones are stale") {
  jsm sm(8);
  driver<jsm> d{sm};
  const auto reg = d(session_register());
  REQUIRE(reg.outcome() == session_result<std::string>::kind::registered);
  const client_id a = reg.registered_id();
  CHECK(a == client_id{2});  // the register command's log index
  CHECK_FALSE(reg.has_value());
  CHECK_THROWS_AS((void)reg.value(), std::logic_error);
  CHECK(sm.session(a) == session_info{0, index_t{2}});

  // First attempt: applied.
  const buffer one = session_command(a, 1, text("one"));
  auto r1 = d(one);
  REQUIRE(r1.has_value());
  CHECK(r1.outcome() == session_result<std::string>::kind::applied);
  CHECK_FALSE(r1.replayed());
  CHECK(r1.value() == "one;");
  CHECK(sm.inner().applies() == 1);

  // The same request again (a retry): the cached result, not applied again.
  for (int k = 0; k < 3; ++k) {
    auto again = d(one);
    REQUIRE(again.has_value());
    CHECK(again.replayed());
    CHECK(again.value() == "one;");
  }
  CHECK(sm.inner().applies() == 1);
  CHECK(sm.inner().text() == "one;");

  // Interleaved with other applies, the cached result is still the first one's.
  CHECK(d(sessionless_command(text("other"))).value() == "one;other;");
  CHECK(d(one).value() == "one;");

  // The next sequence is applied; the first is now stale.
  auto r2 = d(session_command(a, 2, text("two")));
  CHECK(r2.outcome() == session_result<std::string>::kind::applied);
  CHECK(r2.value() == "one;other;two;");
  auto stale = d(one);
  CHECK_FALSE(stale.has_value());
  CHECK(stale.error() == session_errc::stale);
  CHECK(sm.inner().applies() == 3);

  // A gap is allowed (a client may give up on a request); what it skipped is then stale.
  CHECK(d(session_command(a, 10, text("ten"))).outcome() == session_result<std::string>::kind::applied);
  CHECK(d(session_command(a, 5, text("five"))).error() == session_errc::stale);
  CHECK(sm.inner().text() == "one;other;two;ten;");
  CHECK(sm.session(a)->last_sequence == 10);

  // value() of an error throws a std::system_error with the session error code.
  try {
    (void)stale.value();
    FAIL("value() did not throw");
  } catch (const std::system_error& e) {
    CHECK(e.code() == session_errc::stale);
    CHECK(e.code().category().name() == std::string("raft.session"));
  }
}

TEST_CASE("unknown, unregistered and never-registered sessions are expired, and nothing is applied") {
  jsm sm(8);
  driver<jsm> d{sm};
  CHECK(d(session_command(client_id{2}, 1, text("x"))).error() == session_errc::expired);  // not yet registered
  const client_id a = d(session_register()).registered_id();
  CHECK(a == client_id{3});
  CHECK(d(session_command(client_id{99}, 1, text("x"))).error() == session_errc::expired);
  CHECK(d(session_command(a, 1, text("x"))).has_value());
  CHECK(d(session_unregister(a)).outcome() == session_result<std::string>::kind::unregistered);
  CHECK(sm.session_count() == 0);
  CHECK(d(session_command(a, 1, text("x"))).error() == session_errc::expired);  // retry after close
  CHECK(d(session_command(a, 2, text("y"))).error() == session_errc::expired);
  CHECK(d(session_unregister(a)).error() == session_errc::expired);
  CHECK(sm.inner().applies() == 1);
}

TEST_CASE("sessionless commands are applied every time (no deduplication)") {
  jsm sm(8);
  driver<jsm> d{sm};
  const buffer cmd = sessionless_command(text("x"));
  CHECK(d(cmd).value() == "x;");
  CHECK(d(cmd).value() == "x;x;");
  CHECK(sm.inner().applies() == 2);
}

TEST_CASE("the adapter over kv_state_machine: a retried APPEND is applied once") {
  session_state_machine<kv> sm;
  CHECK(sm.max_sessions() == session_state_machine<kv>::default_max_sessions);
  driver<session_state_machine<kv>> d{sm};
  session_client c(d(session_register()).registered_id());
  const buffer first = c.next(kv::append("log", "a"));
  CHECK(c.next_sequence() == 2);
  CHECK(d(first).value() == "a");
  CHECK(d(first).value() == "a");
  CHECK(d(first).replayed());
  CHECK(d(c.next(kv::append("log", "b"))).value() == "ab");
  CHECK(sm.inner().find("log") == std::string("ab"));
  CHECK(sm.inner().applied_count() == 2);
  // A malformed inner command is the inner machine's business: applied (once), its own error.
  const buffer junk = c.next(text("\x09junk"));
  CHECK(d(junk).value() == "error: malformed command");
  CHECK(d(junk).replayed());
  CHECK(sm.inner().applied_count() == 3);
}

TEST_CASE("a throwing inner apply leaves the session table as it was") {
  struct thrower {
    bool armed = false;
    int apply(index_t, std::span<const std::byte>) {
      if (armed) throw std::runtime_error("boom");
      return 1;
    }
  };
  session_state_machine<thrower> sm(4);
  driver<session_state_machine<thrower>> d{sm};
  const client_id a = d(session_register()).registered_id();
  CHECK(d(session_command(a, 1, text("x"))).value() == 1);
  sm.inner().armed = true;
  CHECK_THROWS_AS(d(session_command(a, 2, text("x"))), std::runtime_error);
  CHECK(sm.session(a)->last_sequence == 1);
  CHECK(d(session_command(a, 1, text("x"))).replayed());
}

// ---- eviction --------------------------------------------------------------------------------

TEST_CASE("the table keeps at most max_sessions, evicting the least recently used by log index") {
  jsm sm(3);
  driver<jsm> d{sm};
  const client_id a = d(session_register()).registered_id();
  const client_id b = d(session_register()).registered_id();
  const client_id c = d(session_register()).registered_id();
  const buffer a1 = session_command(a, 1, text("a1"));
  const buffer b1 = session_command(b, 1, text("b1"));
  CHECK(d(a1).has_value());
  CHECK(d(b1).has_value());
  // c registered before a and b were last used: c is the least recently used.
  const client_id e = d(session_register()).registered_id();
  CHECK(sm.session_count() == 3);
  CHECK(sm.evictions() == 1);
  CHECK_FALSE(sm.session(c));
  CHECK(sm.session(a));
  CHECK(sm.session(b));
  CHECK(sm.session(e));
  CHECK(d(session_command(c, 1, text("c1"))).error() == session_errc::expired);

  // A retry (replayed) and even a stale request count as use: a stays, b goes.
  CHECK(d(a1).replayed());
  const client_id f = d(session_register()).registered_id();
  CHECK_FALSE(sm.session(b));
  CHECK(sm.session(a));
  CHECK(sm.session(f));
  const auto applies = sm.inner().applies();
  // b's retry after eviction: reported expired, not applied again.
  const auto rb = d(b1);
  CHECK(rb.error() == session_errc::expired);
  CHECK(sm.inner().applies() == applies);
  CHECK(sm.inner().text() == "a1;b1;");
  CHECK_THROWS_AS((void)jsm(0), std::invalid_argument);
}

TEST_CASE("eviction and every result are the same on every replica (random command streams)") {
  const std::uint64_t seed = raft_test::test_seed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  std::uint64_t applied = 0, replayed = 0, expired = 0, stale = 0;  // over all rounds
  for (int round = 0; round < 20; ++round) {
    CAPTURE(round);
    const std::size_t cap = 1 + rng() % 5;
    jsm x(cap), y(cap);
    driver<jsm> dx{x}, dy{y};
    std::vector<client_id> known;  // every id ever registered (some evicted)
    std::map<client_id, std::uint64_t> sent;  // highest sequence sent per session
    for (int k = 0; k < 400; ++k) {
      buffer cmd;
      const auto what = rng() % 10;
      if (what == 0 || known.empty()) {
        cmd = session_register();
      } else if (what == 1) {
        cmd = session_unregister(known[rng() % known.size()]);
      } else if (what == 2) {
        std::vector<std::byte> junk(rng() % 30);
        for (auto& b : junk) b = static_cast<std::byte>(rng());
        if (!junk.empty() && rng() % 2) junk[0] = std::byte{'R'};
        cmd = buffer{junk};
      } else {
        const client_id id = known[rng() % known.size()];
        auto& top = sent[id];
        // Mostly the next request or a retry; sometimes an old one.
        const auto pick = rng() % 6;
        const std::uint64_t seq = pick < 3 ? top + 1 : (pick < 5 || top == 0 ? std::max<std::uint64_t>(top, 1) : 1 + rng() % top);
        top = std::max(top, seq);
        cmd = session_command(id, seq, text("c" + std::to_string(k)));
      }
      const auto rx = dx(cmd);
      const auto ry = dy(cmd);
      REQUIRE(rx == ry);
      if (rx.outcome() == session_result<std::string>::kind::registered) known.push_back(rx.registered_id());
      if (rx.outcome() == session_result<std::string>::kind::applied) ++applied;
      if (rx.replayed()) ++replayed;
      if (rx.error() == session_errc::expired) ++expired;
      if (rx.error() == session_errc::stale) ++stale;
      REQUIRE(x.session_count() <= cap);
    }
    CHECK(x.inner().text() == y.inner().text());
    CHECK(x.evictions() == y.evictions());
    for (client_id id : known) CHECK(x.session(id) == y.session(id));
  }
  // The streams exercised every path. Counted over all 20 rounds: a single round of 400
  // commands misses a stale or a replayed request for some seeds.
  CHECK(applied > 0);
  CHECK(replayed > 0);
  CHECK(expired > 0);
  CHECK(stale > 0);
}

TEST_CASE("any bytes are applied without throwing, and malformed ones change nothing") {
  const std::uint64_t seed = raft_test::test_seed() ^ 0x5e55;
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  jsm sm(4);
  driver<jsm> d{sm};
  const client_id a = d(session_register()).registered_id();
  CHECK(d(session_command(a, 1, text("x"))).has_value());
  const buffer valid = session_command(a, 2, text("y"));
  for (int k = 0; k < 5000; ++k) {
    std::vector<std::byte> b(valid.bytes().begin(), valid.bytes().end());
    // Flip, cut or extend.
    switch (rng() % 3) {
      case 0: b[rng() % b.size()] ^= static_cast<std::byte>(1 + rng() % 255); break;
      case 1: b.resize(rng() % b.size()); break;
      default: b.push_back(static_cast<std::byte>(rng())); break;
    }
    const auto applies = sm.inner().applies();
    const auto before = sm.session(a);
    session_result<std::string> r = session_result<std::string>::make_unregistered();
    REQUIRE_NOTHROW(r = d(buffer{b}));
    if (r.error() == session_errc::malformed) {
      CHECK(sm.inner().applies() == applies);
      CHECK(sm.session(a) == before);
    }
  }
}

// ---- snapshots -------------------------------------------------------------------------------

TEST_CASE("snapshot round trip: sessions, cached results and the inner state, in any chunk size") {
  jsm sm(4);
  driver<jsm> d{sm};
  const client_id a = d(session_register()).registered_id();
  const client_id b = d(session_register()).registered_id();
  const client_id never_used = d(session_register()).registered_id();
  const buffer a3 = session_command(a, 3, text("a-three"));
  const buffer b1 = session_command(b, 1, text(std::string(5000, 'b')));  // a large cached result
  CHECK(d(session_command(a, 1, text("a1"))).has_value());
  CHECK(d(a3).has_value());
  CHECK(d(b1).has_value());
  CHECK(d(sessionless_command(text("loose"))).has_value());

  for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{33}, std::size_t{4096}, std::size_t{1} << 20}) {
    for (std::size_t piece : {std::size_t{1}, std::size_t{5}, std::size_t{1000}, std::size_t{1} << 20}) {
      CAPTURE(chunk);
      CAPTURE(piece);
      auto src = sm.snapshot();
      const auto bytes = drain(src, chunk);
      CHECK(src.read(std::span<std::byte>()) == 0);

      jsm copy(4);
      load(copy, bytes, piece);
      CHECK(copy.inner().text() == sm.inner().text());
      CHECK(copy.session_count() == 3);
      for (client_id id : {a, b, never_used}) CHECK(copy.session(id) == sm.session(id));
      // The restored machine gives the same future results as the original.
      driver<jsm> dc{copy};
      dc.next = d.next;
      CHECK(dc(a3).replayed());
      CHECK(dc(a3).value() == "a1;a-three;");
      CHECK(dc(b1).value().size() == std::string("a1;a-three;").size() + 5001);
      CHECK(dc(session_command(a, 2, text("x"))).error() == session_errc::stale);
      CHECK(dc(session_command(never_used, 1, text("n"))).outcome() == session_result<std::string>::kind::applied);
      const client_id c2 = dc(session_register()).registered_id();  // table full: evicts LRU
      CHECK(copy.session(c2));
      CHECK(copy.session_count() == 4);
      const client_id c3 = dc(session_register()).registered_id();
      CHECK(copy.session(c3));
      CHECK_FALSE(copy.session(b));  // the least recently used: last used by the replay of b1
      CHECK(copy.session(a));
      CHECK(copy.inner().applies() == 1);  // only never_used's request ran on the copy
    }
  }
}

TEST_CASE("a snapshot source is unaffected by later applies, evictions and unregisters") {
  jsm sm(2);
  driver<jsm> d{sm};
  const client_id a = d(session_register()).registered_id();
  const client_id b = d(session_register()).registered_id();
  CHECK(d(session_command(a, 1, text("a1"))).has_value());
  CHECK(d(session_command(b, 1, text("b1"))).has_value());
  const auto at_a = sm.session(a), at_b = sm.session(b);
  const std::string inner_then = sm.inner().text();

  auto src = sm.snapshot();
  std::vector<std::byte> got(3);
  REQUIRE(src.read(got) == 3);  // part read before the changes, the rest after
  // Later: a new result for a, b unregistered, new sessions evicting a.
  CHECK(d(session_command(a, 2, text("a2"))).has_value());
  CHECK(d(session_unregister(b)).outcome() == session_result<std::string>::kind::unregistered);
  d(session_register());
  d(session_register());
  CHECK_FALSE(sm.session(a));
  const auto rest = drain(src, 11);
  got.insert(got.end(), rest.begin(), rest.end());

  jsm copy(2);
  load(copy, got, 64);
  CHECK(copy.session(a) == at_a);
  CHECK(copy.session(b) == at_b);
  CHECK(copy.session_count() == 2);
  CHECK(copy.inner().text() == inner_then);
  driver<jsm> dc{copy};
  dc.next = d.next;
  CHECK(dc(session_command(a, 1, text("a1"))).value() == "a1;");  // a's result as it was
  CHECK(dc(session_command(b, 1, text("b1"))).value() == "a1;b1;");
}

TEST_CASE("restoring into a smaller table evicts the least recently used, deterministically") {
  jsm big(5);
  driver<jsm> d{big};
  std::vector<client_id> ids;
  for (int k = 0; k < 5; ++k) ids.push_back(d(session_register()).registered_id());
  // Use them in the order 3, 0, 4, 1, 2: 3 is now the least recently used.
  for (int k : {3, 0, 4, 1, 2}) CHECK(d(session_command(ids[static_cast<std::size_t>(k)], 1, text("x"))).has_value());
  auto src = big.snapshot();
  const auto bytes = drain(src, 100);
  jsm small(3);
  load(small, bytes, 100);
  CHECK(small.session_count() == 3);
  CHECK_FALSE(small.session(ids[3]));
  CHECK_FALSE(small.session(ids[0]));
  for (int k : {4, 1, 2}) CHECK(small.session(ids[static_cast<std::size_t>(k)]));
}

TEST_CASE("a malformed session snapshot throws and changes nothing") {
  jsm sm(4);
  driver<jsm> d{sm};
  const client_id a = d(session_register()).registered_id();
  CHECK(d(session_command(a, 1, text("a1"))).has_value());
  auto src = sm.snapshot();
  const auto good = drain(src, 64);

  jsm target(4);
  driver<jsm> dt{target};
  const client_id t = dt(session_register()).registered_id();
  CHECK(dt(session_command(t, 1, text("mine"))).has_value());
  auto unchanged = [&] {
    CHECK(target.session_count() == 1);
    CHECK(target.session(t) == session_info{1, index_t{3}});
    CHECK(target.inner().text() == "mine;");
  };

  SUBCASE("the snapshot ends inside the session table") {
    const std::size_t header = 17, record = 33;
    for (std::size_t cut : {std::size_t{0}, std::size_t{5}, header, header + 10, header + record, header + record + 2}) {
      CAPTURE(cut);
      auto s = target.restore();
      s.write(std::span<const std::byte>(good).first(cut));
      CHECK_THROWS_AS(s.finish(), std::runtime_error);
      unchanged();
    }
  }
  SUBCASE("wrong magic or version") {
    for (std::size_t at : {std::size_t{0}, std::size_t{7}, std::size_t{8}}) {
      auto bad = good;
      bad[at] ^= std::byte{0x40};
      auto s = target.restore();
      CHECK_THROWS_AS(s.write(bad), std::runtime_error);
      unchanged();
    }
  }
  SUBCASE("an invalid session record") {
    auto bad = good;
    for (std::size_t i = 17; i < 25; ++i) bad[i] = std::byte{0};  // session id 0
    auto s = target.restore();
    CHECK_THROWS_AS(s.write(bad), std::runtime_error);
    unchanged();
    auto bad2 = good;
    bad2[17 + 24] = std::byte{7};  // "has result" flag not 0 or 1
    auto s2 = target.restore();
    CHECK_THROWS_AS(s2.write(bad2), std::runtime_error);
    unchanged();
  }
  SUBCASE("a sink dropped before finish changes nothing") {
    {
      auto s = target.restore();
      s.write(good);
    }
    unchanged();
  }
  SUBCASE("the good snapshot restores") {
    load(target, good, 3);
    CHECK(target.session_count() == 1);
    CHECK(target.session(a) == session_info{1, index_t{3}});  // a and t are both id 2
    CHECK(target.inner().text() == "a1;");
  }
}

TEST_CASE("result codecs round trip, and reject bytes out of the type's range") {
  auto round = [](const auto& v) {
    using T = std::decay_t<decltype(v)>;
    std::vector<std::byte> out;
    session_result_codec<T>::encode(v, out);
    return session_result_codec<T>::decode(out);
  };
  CHECK(round(std::int64_t{-5}) == std::int64_t{-5});
  CHECK(round(std::numeric_limits<std::uint64_t>::max()) == std::numeric_limits<std::uint64_t>::max());
  CHECK(round(std::int32_t{-1}) == std::int32_t{-1});
  CHECK(round(true) == true);
  CHECK(round(session_errc::stale) == session_errc::stale);
  CHECK(round(std::string("abc")) == std::string("abc"));
  CHECK(round(std::string()) == std::string());
  CHECK(round(text("xyz")) == text("xyz"));
  const auto none = round(std::optional<std::string>{});
  REQUIRE(none.has_value());
  CHECK_FALSE(none->has_value());
  const auto some = round(std::optional<std::string>{"s"});
  REQUIRE(some.has_value());
  CHECK(*some == std::optional<std::string>{"s"});
  std::vector<std::byte> wide;
  session_result_codec<std::uint32_t>::encode(0xFFFFFFFFu, wide);
  CHECK_FALSE(session_result_codec<std::uint8_t>::decode(wide));
  CHECK_FALSE(session_result_codec<std::int64_t>::decode(std::span<const std::byte>(wide).first(7)));
  CHECK_FALSE(session_result_codec<std::optional<int>>::decode(std::vector<std::byte>{std::byte{2}}));
  CHECK_FALSE(session_result_codec<std::optional<int>>::decode(std::vector<std::byte>{}));
}

TEST_CASE("session_state_machine<kv_state_machine> snapshots when kv_state_machine does") {
  if constexpr (snapshot_state_machine<kv>) {
    session_state_machine<kv> sm(4);
    driver<session_state_machine<kv>> d{sm};
    session_client c(d(session_register()).registered_id());
    const buffer first = c.next(kv::append("log", "a"));
    CHECK(d(first).value() == "a");
    auto src = sm.snapshot();
    const auto bytes = drain(src, 10);
    session_state_machine<kv> copy(4);
    load(copy, bytes, 10);
    CHECK(copy.inner().data() == sm.inner().data());
    driver<session_state_machine<kv>> dc{copy};
    dc.next = d.next;
    CHECK(dc(first).replayed());
    CHECK(dc(first).value() == "a");
    CHECK(copy.inner().find("log") == std::string("a"));
  } else {
    MESSAGE("kv_state_machine has no snapshot() yet: session_state_machine<kv> is a plain state machine");
    CHECK_FALSE(snapshot_state_machine<session_state_machine<kv>>);
  }
}

TEST_CASE("snapshot round trip of empty cached results and an empty inner snapshot") {
  // Returns the payload; its own state is empty, so its snapshot has no bytes.
  struct echo {
    struct source {
      std::size_t read(std::span<std::byte>) { return 0; }
    };
    struct sink {
      void write(std::span<const std::byte> b) {
        if (!b.empty()) throw std::runtime_error("echo: unexpected bytes");
      }
      void finish() {}
    };
    std::string apply(index_t, std::span<const std::byte> c) { return std::string(reinterpret_cast<const char*>(c.data()), c.size()); }
    source snapshot() { return {}; }
    sink restore() { return {}; }
  };
  using esm = session_state_machine<echo>;
  static_assert(snapshot_state_machine<esm>);
  esm sm(4);
  driver<esm> d{sm};
  const client_id a = d(session_register()).registered_id();
  const client_id b = d(session_register()).registered_id();
  const buffer a1 = session_command(a, 1, std::span<const std::byte>{});
  CHECK(d(a1).value().empty());
  CHECK(d(session_command(b, 4, text("bee"))).value() == "bee");
  for (std::size_t chunk : {std::size_t{1}, std::size_t{50}}) {
    auto src = sm.snapshot();
    const auto bytes = drain(src, chunk);
    CHECK(bytes.size() == 17 + 33 + 0 + 33 + 3);
    esm copy(4);
    load(copy, bytes, chunk);
    CHECK(copy.session(a) == sm.session(a));
    CHECK(copy.session(b) == sm.session(b));
    driver<esm> dc{copy};
    dc.next = d.next;
    CHECK(dc(a1).replayed());
    CHECK(dc(a1).value().empty());
  }
  // An empty table.
  esm none(4);
  auto src = none.snapshot();
  const auto bytes = drain(src, 5);
  CHECK(bytes.size() == 17);
  esm copy(4);
  load(copy, bytes, 5);
  CHECK(copy.session_count() == 0);
}
