// tests/sim/linearizability.hpp - a linearizability checker for key-value histories.
//
// A history is what clients saw: each operation (put, append, get on one key) with the time it
// was invoked, the time its answer came back, and how it ended:
//   ok    it took effect, exactly once, somewhere between invocation and answer; a get read the
//         value it reports;
//   fail  it certainly did not take effect (refused before anything was written);
//   info  unknown: it timed out or its node went away. A put or append may have taken effect at
//         any moment after its invocation, or never; an info get tells nothing and is ignored.
// The history is linearizable if there is one order of the operations that took effect,
// consistent with real time (an operation answered at t comes before one invoked at or after t)
// and with a single copy of the key-value map, in which every get reads what it reported.
//
// The search is Wing & Gong's, with Lowe's improvements (G. Lowe, "Testing for linearizability",
// 2017): operations are linearized "just in time" by walking a list of invocation and answer
// events, and every configuration reached (the set of operations linearized, the model's value)
// is remembered, so no configuration is explored twice. Keys are independent (the map is a
// product of one register per key: P-compositionality), so each key's history is checked alone.
// An info operation never has to be linearized; a configuration with more info operations
// linearized than another, and the same value and completed operations, can do nothing the other
// cannot, so it is pruned (dominance). And an info operation that no read sees before the next
// put changed nothing anyone saw, so the search never places a put while one is unseen: the same
// order without it is also tried. Finally, the next reads constrain every continuation (see
// "looking ahead"). Together these keep many concurrent timed-out operations from costing 2^n.
//
// The model: a key holds a string; absent and empty are the same. put sets it, append adds to
// its end, get reads it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <istream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lin {

enum class op_kind : std::uint8_t { put, append, get };
enum class op_status : std::uint8_t { ok, fail, info };

inline const char* to_string(op_kind k) {
  switch (k) {
    case op_kind::put: return "put";
    case op_kind::append: return "append";
    case op_kind::get: return "get";
  }
  return "?";
}
inline const char* to_string(op_status s) {
  switch (s) {
    case op_status::ok: return "ok";
    case op_status::fail: return "fail";
    case op_status::info: return "info";
  }
  return "?";
}

/// One client operation.
struct kv_op {
  std::string client;
  std::int64_t start = 0;
  std::optional<std::int64_t> end;  ///< answer time; none: never answered (info only)
  op_kind kind = op_kind::get;
  std::string key;
  /// put/append: the argument. get: the value read; none (or empty) = the key was absent.
  std::optional<std::string> value;
  op_status status = op_status::ok;
  std::size_t line = 0;  ///< where it came from (a file's line number, or a position), for messages
};

/// One line in the text format of tests/sim/README (and lincheck):
///   <client> <start_ns> <end_ns|-> <put|append|get> <key> <value|~> <ok|fail|info>
inline std::string format(const kv_op& o) {
  std::ostringstream os;
  os << o.client << ' ' << o.start << ' ';
  if (o.end)
    os << *o.end;
  else
    os << '-';
  os << ' ' << to_string(o.kind) << ' ' << o.key << ' ';
  if (o.value && !o.value->empty())
    os << *o.value;
  else
    os << '~';
  os << ' ' << to_string(o.status);
  return os.str();
}

/// A history file could not be read: the (1-based) line and why.
struct parse_error {
  std::size_t line = 0;
  std::string what;
};

/// Reads a history in the text format. Lines starting with '#' and blank lines are skipped.
/// Returns the first error, if any.
inline std::optional<parse_error> parse(std::istream& in, std::vector<kv_op>& out) {
  std::string text;
  std::size_t line_no = 0;
  auto number = [](const std::string& s, std::int64_t& v) {
    if (s.empty()) return false;
    std::size_t k = 0;
    bool neg = false;
    if (s[0] == '-') {
      neg = true;
      k = 1;
      if (s.size() == 1) return false;
    }
    std::int64_t r = 0;
    for (; k < s.size(); ++k) {
      if (s[k] < '0' || s[k] > '9') return false;
      if (r > (std::numeric_limits<std::int64_t>::max() - (s[k] - '0')) / 10) return false;
      r = r * 10 + (s[k] - '0');
    }
    v = neg ? -r : r;
    return true;
  };
  while (std::getline(in, text)) {
    ++line_no;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    std::istringstream ls(text);
    std::vector<std::string> tok;
    for (std::string t; ls >> t;) tok.push_back(t);
    if (tok.empty() || tok[0][0] == '#') continue;
    auto bad = [&](std::string why) { return parse_error{line_no, std::move(why)}; };
    if (tok.size() != 7)
      return bad("expected 7 fields (client start end op key value status), found " +
                 std::to_string(tok.size()));
    kv_op o;
    o.line = line_no;
    o.client = tok[0];
    if (!number(tok[1], o.start)) return bad("start time is not an integer: " + tok[1]);
    if (tok[2] != "-") {
      std::int64_t e = 0;
      if (!number(tok[2], e)) return bad("end time is not an integer or '-': " + tok[2]);
      o.end = e;
    }
    if (tok[3] == "put")
      o.kind = op_kind::put;
    else if (tok[3] == "append")
      o.kind = op_kind::append;
    else if (tok[3] == "get")
      o.kind = op_kind::get;
    else
      return bad("unknown operation (want put, append or get): " + tok[3]);
    o.key = tok[4];
    if (tok[5] != "~") o.value = tok[5];
    if (tok[6] == "ok")
      o.status = op_status::ok;
    else if (tok[6] == "fail")
      o.status = op_status::fail;
    else if (tok[6] == "info")
      o.status = op_status::info;
    else
      return bad("unknown status (want ok, fail or info): " + tok[6]);
    if (o.kind != op_kind::get && !o.value) return bad(std::string(tok[3]) + " needs a value, not '~'");
    if (o.status == op_status::ok && !o.end) return bad("an ok operation needs an end time");
    if (o.end && *o.end < o.start) return bad("end time before start time");
    out.push_back(std::move(o));
  }
  return std::nullopt;
}

/// The verdict on a history.
struct result {
  enum class verdict { linearizable, not_linearizable, unknown } outcome = verdict::linearizable;
  std::string key;          ///< the key whose history is not linearizable (or was given up on)
  std::string explanation;  ///< for a person: what could not be linearized, and around what
  std::uint64_t configurations = 0;  ///< configurations explored, all keys
  std::size_t keys = 0;
  std::size_t operations = 0;  ///< operations that had to be placed (ok) or could be (info)
  std::size_t stuck_op = std::size_t(-1);  ///< index (in the caller's history) of the operation
                                           ///< that could not be placed, when not linearizable
  [[nodiscard]] bool ok() const noexcept { return outcome == verdict::linearizable; }
};

struct limits {
  /// Configurations explored per key before giving up (verdict unknown). Deterministic: the
  /// same history always gets the same verdict.
  std::uint64_t max_configurations = 20'000'000;
};

namespace detail {

/// A set of small integers.
struct bitset {
  std::vector<std::uint64_t> w;
  explicit bitset(std::size_t n = 0) : w((n + 63) / 64, 0) {}
  void set(std::size_t i) { w[i / 64] |= std::uint64_t{1} << (i % 64); }
  void reset(std::size_t i) { w[i / 64] &= ~(std::uint64_t{1} << (i % 64)); }
  [[nodiscard]] bool test(std::size_t i) const { return (w[i / 64] >> (i % 64)) & 1; }
  [[nodiscard]] bool subset_of(const bitset& o) const {
    for (std::size_t k = 0; k < w.size(); ++k)
      if (w[k] & ~o.w[k]) return false;
    return true;
  }
  friend bool operator==(const bitset&, const bitset&) = default;
};

inline std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  return h;
}

/// The search for one key. Operations are those of one key, already filtered: ok operations
/// (must be linearized between start and end) and info put/append (may be, after start).
class key_search {
 public:
  struct op {
    op_kind kind;
    std::string value;  // argument, or value read ("" = absent)
    bool required;      // ok (true) or info (false)
    std::int64_t start;
    std::optional<std::int64_t> end;
    std::size_t origin;  // index in the caller's history
  };

  key_search(std::vector<op> ops, std::uint64_t budget) : ops_(std::move(ops)), budget_(budget) {}

  enum class outcome { yes, no, gave_up };

  outcome run() {
    build_list();
    const std::size_t n = ops_.size();
    slot_.assign(n, 0);
    std::size_t nreq = 0, nopt = 0;
    for (std::size_t i = 0; i < n; ++i) slot_[i] = ops_[i].required ? nreq++ : nopt++;
    req_ = bitset(nreq);
    opt_ = bitset(nopt);
    bitset& req = req_;
    bitset& opt = opt_;
    std::vector<std::size_t>& slot = slot_;
    for (std::size_t i = 0; i < n; ++i)
      if (ops_[i].required && ops_[i].kind == op_kind::get) reads_.push_back(read_index{i, {}, {}, {}, false});
    std::stable_sort(reads_.begin(), reads_.end(),
                     [&](const read_index& a, const read_index& b) { return *ops_[a.op].end < *ops_[b.op].end; });
    read_pos_.assign(n, none);
    for (std::size_t k = 0; k < reads_.size(); ++k) read_pos_[reads_[k].op] = k;
    std::size_t placed = 0;  // required operations linearized
    std::string state;
    std::vector<frame>& stack = stack_;
    stack.clear();
    auto mark = [&](std::size_t op_i, bool on) {
      bitset& b = ops_[op_i].required ? req : opt;
      if (on)
        b.set(slot[op_i]);
      else
        b.reset(slot[op_i]);
      if (ops_[op_i].required) on ? ++placed : --placed;
      if (!on && read_pos_[op_i] != none) first_read_ = std::min(first_read_, read_pos_[op_i]);
    };
    // The candidates are the invocations before the first answer in the list. Each is tried in
    // two passes: completed operations first, then those of unknown outcome, so the orders
    // with fewer unknown operations are explored first and the others are then pruned.
    std::size_t e = next_[head_];
    int pass = 0;
    while (next_[head_] != none) {
      const entry& en = entries_[e];
      if (en.is_call) {
        const op& o = ops_[en.op];
        std::string after;
        // An operation of unknown outcome that no read sees before the next put changed nothing
        // anyone saw: the same order without it is just as good, and the search tries that one
        // too. So while one is unseen (dirty), no put may be linearized.
        const bool dirty_after = o.kind == op_kind::get ? false : (dirty_ || !o.required);
        if (o.required == (pass == 0) && !(dirty_ && o.kind == op_kind::put) && apply(o, state, after)) {
          mark(en.op, true);
          if (reads_ahead_possible(after, dirty_after) && remember(req, opt, after, dirty_after)) {
            prune_read_ = none;
            stack.push_back(frame{e, pass, dirty_, std::move(state)});
            dirty_ = dirty_after;
            state = std::move(after);
            lift(e);
            // Remember how far the search got, for the explanation.
            if (placed > deepest_required_ || (placed == deepest_required_ && blocked_ == none))
              note_deepest(stack, placed, state);
            if (explored_ > budget_) return outcome::gave_up;
            e = next_[head_];
            pass = 0;
            continue;
          }
          mark(en.op, false);
        }
        if (explored_ > budget_) return outcome::gave_up;
        e = next_[e];
        continue;
      }
      if (!ops_[en.op].required) return outcome::yes;  // only info answers (at infinity) left
      if (pass == 0) {  // now the unknown ones
        pass = 1;
        e = next_[head_];
        continue;
      }
      // Since the deepest configuration was recorded nothing was undone: this is what stops it.
      if (blocked_ == none) {
        blocked_ = en.op;
        blocked_read_ = prune_read_;
      }
      if (stack.empty()) return outcome::no;
      frame f = std::move(stack.back());
      stack.pop_back();
      mark(entries_[f.call].op, false);
      state = std::move(f.state_before);
      dirty_ = f.dirty_before;
      unlift(f.call);
      e = next_[f.call];
      pass = f.pass;
    }
    return outcome::yes;
  }

  [[nodiscard]] std::uint64_t explored() const noexcept { return explored_; }
  /// The longest run of operations linearized (indices into ops), the value after them, and the
  /// completed operation whose answer came before it could be placed.
  [[nodiscard]] const std::vector<std::size_t>& deepest() const noexcept { return deepest_; }
  [[nodiscard]] const std::string& deepest_state() const noexcept { return deepest_state_; }
  [[nodiscard]] std::size_t blocked() const noexcept { return blocked_; }
  /// The read that no continuation could satisfy there, if that is what stopped it.
  [[nodiscard]] std::size_t blocked_read() const noexcept { return blocked_read_; }
  [[nodiscard]] const std::vector<op>& ops() const noexcept { return ops_; }

  static bool apply(const op& o, const std::string& state, std::string& after) {
    switch (o.kind) {
      case op_kind::put: after = o.value; return true;
      case op_kind::append: after = state + o.value; return true;
      case op_kind::get:
        if (o.value != state) return false;
        after = state;
        return true;
    }
    return false;
  }

 private:
  static constexpr std::size_t none = std::size_t(-1);

  // ---- looking ahead to the next reads ------------------------------------------------------
  //
  // The completed read that must be answered soonest constrains every continuation: until it
  // takes effect only operations not yet linearized can run, so the value it read must be
  // either (a) the current value followed by appends not yet linearized, or (b) the value of a
  // put not yet linearized followed by such appends. A configuration where neither is possible
  // cannot lead anywhere and is dropped. (Cheap, sound, and what keeps long stretches of
  // unknown operations before a read from costing every ordered subset of them.)

  struct frame {
    std::size_t call;  // entry index of the invocation lifted
    int pass;          // the pass it was found in
    bool dirty_before;
    std::string state_before;
  };
  std::vector<frame> stack_;

  struct read_index {
    std::size_t op;
    std::vector<std::vector<std::pair<std::size_t, std::size_t>>> appends_at;  // (op, length) by position
    std::vector<std::pair<std::size_t, std::size_t>> puts;  // puts whose value starts the read, (op, length)
    std::vector<std::size_t> overlapping;  // later-answered reads (places in reads_) invoked before it was answered
    bool built;
  };

  [[nodiscard]] bool linearized(std::size_t op_i) const {
    return (ops_[op_i].required ? req_ : opt_).test(slot_[op_i]);
  }

  void build(std::size_t k) {
    read_index& r = reads_[k];
    const std::string& v = ops_[r.op].value;
    const std::int64_t by = *ops_[r.op].end;
    for (std::size_t j = k + 1; j < reads_.size(); ++j)
      if (ops_[reads_[j].op].start <= by) r.overlapping.push_back(j);
    r.appends_at.assign(v.size() + 1, {});
    for (std::size_t i = 0; i < ops_.size(); ++i) {
      const op& o = ops_[i];
      if (o.start > by) continue;  // invoked after the read was answered: cannot be in it
      if (o.kind == op_kind::append && !o.value.empty()) {
        for (auto pos = v.find(o.value); pos != std::string::npos; pos = v.find(o.value, pos + 1))
          r.appends_at[pos].emplace_back(i, o.value.size());
      } else if (o.kind == op_kind::put && v.compare(0, o.value.size(), o.value) == 0) {
        r.puts.emplace_back(i, o.value.size());
      }
    }
    r.built = true;
  }

  /// Can the rest of read `r`'s value, from `from`, be made of appends not yet linearized?
  bool appends_reach_end(const read_index& r, std::size_t from) {
    const std::size_t end = ops_[r.op].value.size();
    if (from == end) return true;
    seen_pos_.assign(end + 1, 0);
    todo_.clear();
    todo_.push_back(from);
    seen_pos_[from] = 1;
    while (!todo_.empty()) {
      const std::size_t p = todo_.back();
      todo_.pop_back();
      for (const auto& [a, len] : r.appends_at[p]) {
        if (linearized(a)) continue;
        const std::size_t q = p + len;
        if (q == end) return true;
        if (!seen_pos_[q]) seen_pos_[q] = 1, todo_.push_back(q);
      }
    }
    return false;
  }

  /// Can the read at `k` in reads_ still see its value, from `state`: (a) or (b) above?
  bool read_possible(std::size_t k, const std::string& state) {
    read_index& r = reads_[k];
    if (!r.built) build(k);
    if (read_extends(r, state)) return true;
    for (const auto& [p, len] : r.puts)
      if (!linearized(p) && appends_reach_end(r, len)) return true;
    return false;
  }

  /// (a): the read sees `state` followed by appends not yet linearized.
  bool read_extends(read_index& r, const std::string& state) {
    const std::string& v = ops_[r.op].value;
    return state.size() <= v.size() && v.compare(0, state.size(), state) == 0 &&
           appends_reach_end(r, state.size());
  }

  /// Checks the next two completed reads not yet linearized against `state`. And when `dirty`
  /// (an unknown operation no read has seen yet), no put may come before the next read, so
  /// that read, the first answered or one overlapping it, must see (a).
  bool reads_ahead_possible(const std::string& state, bool dirty) {
    while (first_read_ < reads_.size() && linearized(reads_[first_read_].op)) ++first_read_;
    if (first_read_ == reads_.size()) return true;
    if (dirty) {
      read_index& first = reads_[first_read_];
      if (!first.built) build(first_read_);
      bool some = read_extends(first, state);
      for (std::size_t j = 0; !some && j < first.overlapping.size(); ++j) {
        read_index& other = reads_[first.overlapping[j]];
        if (linearized(other.op)) continue;
        if (!other.built) build(first.overlapping[j]);
        some = read_extends(other, state);
      }
      if (!some) {
        prune_read_ = first.op;
        return false;
      }
    }
    std::size_t checked = 0;
    for (std::size_t k = first_read_; k < reads_.size() && checked < 2; ++k) {
      if (linearized(reads_[k].op)) continue;
      ++checked;
      if (!read_possible(k, state)) {
        prune_read_ = reads_[k].op;
        return false;
      }
    }
    return true;
  }

  bitset req_, opt_;
  std::vector<std::size_t> slot_;  // each operation's position in req_ or opt_
  std::vector<read_index> reads_;  // completed reads, by answer time
  std::vector<char> seen_pos_;
  std::vector<std::size_t> todo_;
  std::vector<std::size_t> read_pos_;  // each operation's place in reads_, or none
  std::size_t first_read_ = 0;  // every read before this place in reads_ is linearized
  std::size_t prune_read_ = none;
  std::size_t blocked_read_ = none;
  bool dirty_ = false;  // an unknown operation was linearized since the last read
  struct entry {
    bool is_call;
    std::size_t op;
    std::size_t match;  // the call's answer entry, or the answer's call entry
  };

  void build_list() {
    // Events in time order. At one instant: answers of operations that took time, then
    // invocations, then answers of instantaneous operations; so an operation answered at t
    // precedes one invoked at t, and every operation's invocation precedes its answer.
    struct ev {
      std::int64_t t;
      int cls;
      std::size_t seq;
      bool is_call;
      std::size_t op;
    };
    std::vector<ev> evs;
    constexpr std::int64_t inf = std::numeric_limits<std::int64_t>::max();
    for (std::size_t i = 0; i < ops_.size(); ++i) {
      const op& o = ops_[i];
      const bool open = !o.required || !o.end;
      const std::int64_t end = open ? inf : *o.end;
      evs.push_back(ev{o.start, 1, i, true, i});
      evs.push_back(ev{end, open ? 3 : (end == o.start ? 2 : 0), i, false, i});
    }
    std::stable_sort(evs.begin(), evs.end(), [](const ev& a, const ev& b) {
      if (a.t != b.t) return a.t < b.t;
      if (a.cls != b.cls) return a.cls < b.cls;
      return a.seq < b.seq;
    });
    entries_.clear();
    std::vector<std::size_t> call_of(ops_.size(), none), ret_of(ops_.size(), none);
    for (const ev& x : evs) {
      (x.is_call ? call_of : ret_of)[x.op] = entries_.size();
      entries_.push_back(entry{x.is_call, x.op, none});
    }
    for (std::size_t i = 0; i < ops_.size(); ++i) {
      entries_[call_of[i]].match = ret_of[i];
      entries_[ret_of[i]].match = call_of[i];
    }
    // Doubly linked list with a head sentinel at index entries_.size().
    const std::size_t m = entries_.size();
    head_ = m;
    next_.assign(m + 1, none);
    prev_.assign(m + 1, none);
    std::size_t last = head_;
    for (std::size_t k = 0; k < m; ++k) {
      next_[last] = k;
      prev_[k] = last;
      last = k;
    }
  }

  void unlink(std::size_t k) {
    next_[prev_[k]] = next_[k];
    if (next_[k] != none) prev_[next_[k]] = prev_[k];
  }
  void relink(std::size_t k) {
    next_[prev_[k]] = k;
    if (next_[k] != none) prev_[next_[k]] = k;
  }
  void lift(std::size_t call) {
    unlink(call);
    unlink(entries_[call].match);
  }
  void unlift(std::size_t call) {
    relink(entries_[call].match);
    relink(call);
  }

  /// Records the configuration; false if it, or one that can do all it can, was seen before:
  /// the same completed operations and value, a subset of the unknown ones linearized, and no
  /// more restricted (`restricted`: an unknown operation is unseen, so no put may follow yet).
  bool remember(const bitset& req, const bitset& opt, const std::string& state, bool restricted) {
    ++explored_;
    std::uint64_t h = std::hash<std::string>{}(state);
    for (auto x : req.w) h = mix(h, x);
    auto& bucket = seen_[h];
    for (auto& s : bucket) {
      if (s.req == req && s.state == state) {
        for (const auto& [o, r] : s.opts)
          if ((!r || restricted) && o.subset_of(opt)) return false;
        s.opts.emplace_back(opt, restricted);
        return true;
      }
    }
    bucket.push_back(seen{req, state, {{opt, restricted}}});
    return true;
  }

  template <class Stack>
  void note_deepest(const Stack& stack, std::size_t required, const std::string& state) {
    deepest_required_ = required;
    deepest_.clear();
    for (const auto& f : stack) deepest_.push_back(entries_[f.call].op);
    deepest_state_ = state;
    blocked_ = none;
  }

  struct seen {
    bitset req;
    std::string state;
    std::vector<std::pair<bitset, bool>> opts;  // unknown operations linearized, dirty
  };

  std::vector<op> ops_;
  std::uint64_t budget_;
  std::uint64_t explored_ = 0;
  std::vector<entry> entries_;
  std::vector<std::size_t> next_, prev_;
  std::size_t head_ = 0;
  std::unordered_map<std::uint64_t, std::vector<seen>> seen_;
  std::vector<std::size_t> deepest_;
  std::size_t deepest_required_ = 0;
  std::string deepest_state_;
  std::size_t blocked_ = none;
};

inline std::string quote(const std::string& v) { return v.empty() ? "(absent)" : '"' + v + '"'; }

inline std::string describe(const kv_op& o) {
  std::ostringstream os;
  if (o.line != 0) os << "[" << o.line << "] ";
  os << o.client << ' ' << to_string(o.kind) << ' ' << o.key;
  if (o.kind == op_kind::get)
    os << " -> " << quote(o.value.value_or(""));
  else
    os << ' ' << quote(o.value.value_or(""));
  os << " (" << to_string(o.status) << ", " << o.start << ".." << (o.end ? std::to_string(*o.end) : "?")
     << ")";
  return os.str();
}

}  // namespace detail

/// Checks `history`. Operations on different keys are checked separately; the first key (in
/// order of first appearance) whose history is not linearizable is reported.
inline result check(const std::vector<kv_op>& history, limits lim = {}) {
  result r;
  std::vector<std::string> order;
  std::unordered_map<std::string, std::vector<std::size_t>> by_key;
  for (std::size_t i = 0; i < history.size(); ++i) {
    const kv_op& o = history[i];
    if (o.status == op_status::fail) continue;                            // never took effect
    if (o.status == op_status::info && o.kind == op_kind::get) continue;  // read nothing we know
    if (o.status == op_status::ok && !o.end) continue;                    // malformed: parse refuses it
    auto [it, fresh] = by_key.try_emplace(o.key);
    if (fresh) order.push_back(o.key);
    it->second.push_back(i);
  }
  r.keys = order.size();
  bool gave_up = false;
  for (const std::string& key : order) {
    std::vector<detail::key_search::op> ops;
    for (std::size_t i : by_key[key]) {
      const kv_op& o = history[i];
      ops.push_back({o.kind, o.value.value_or(""), o.status == op_status::ok, o.start, o.end, i});
    }
    r.operations += ops.size();
    detail::key_search s(std::move(ops), lim.max_configurations);
    const auto v = s.run();
    r.configurations += s.explored();
    if (v == detail::key_search::outcome::yes) continue;
    if (v == detail::key_search::outcome::gave_up) {
      if (!gave_up) {
        r.key = key;
        r.explanation = "key " + key + ": gave up after " + std::to_string(s.explored()) +
                        " configurations (raise the limit)";
      }
      gave_up = true;
      continue;
    }
    // Not linearizable: say how far the search got and what it could not place.
    r.outcome = result::verdict::not_linearizable;
    r.key = key;
    std::ostringstream os;
    const auto& sops = s.ops();
    std::size_t completed = 0;
    for (const auto& o : sops) completed += o.required ? 1 : 0;
    os << "key " << key << " is not linearizable (" << sops.size() << " operations, " << completed
       << " completed).\n";
    std::size_t req_placed = 0;
    for (std::size_t k : s.deepest()) req_placed += sops[k].required ? 1 : 0;
    os << "  The longest consistent order places " << req_placed << " of the completed operations; "
       << "after it the key holds " << detail::quote(s.deepest_state()) << ".\n";
    if (!s.deepest().empty()) {
      os << "  Its last operations:\n";
      const std::size_t from = s.deepest().size() > 6 ? s.deepest().size() - 6 : 0;
      for (std::size_t k = from; k < s.deepest().size(); ++k)
        os << "    " << detail::describe(history[sops[s.deepest()[k]].origin]) << "\n";
    }
    if (s.blocked() != std::size_t(-1)) {
      const auto& b = sops[s.blocked_read() != std::size_t(-1) ? s.blocked_read() : s.blocked()];
      r.stuck_op = b.origin;
      if (s.blocked_read() != std::size_t(-1)) {
        os << "  From there no order of the remaining operations gives this read its value:\n    "
           << detail::describe(history[b.origin]) << "\n";
        if (s.blocked_read() != s.blocked())
          os << "  (the search was stuck where this operation, answered by then, had to come next:\n    "
             << detail::describe(history[sops[s.blocked()].origin]) << ")\n";
      } else {
        os << "  Then this operation was answered before it could take effect:\n    "
           << detail::describe(history[b.origin]) << "\n";
      }
      // Other operations it overlaps, for context.
      std::vector<std::size_t> overlap;
      for (const auto& o : sops) {
        if (o.origin == b.origin) continue;
        const bool before = o.end && o.required && *o.end <= b.start;
        const bool after = b.end && o.start >= *b.end;
        if (!before && !after) overlap.push_back(o.origin);
      }
      if (!overlap.empty()) {
        os << "  Operations concurrent with it (" << overlap.size() << "):\n";
        for (std::size_t k = 0; k < overlap.size() && k < 8; ++k)
          os << "    " << detail::describe(history[overlap[k]]) << "\n";
        if (overlap.size() > 8) os << "    ...\n";
      }
    }
    r.explanation = os.str();
    return r;
  }
  if (gave_up) r.outcome = result::verdict::unknown;
  return r;
}

}  // namespace lin
