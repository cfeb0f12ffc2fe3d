// tests/fuzz/fuzz_shared_log.cpp - libFuzzer harness for raft::shared_log crash recovery: the
// constructor's replay of a directory of segments the fuzzer wrote.
//
// Two kinds of input (chosen by the first byte):
//
//  - raw: up to 6 files, each a segment (any sequence number, so gaps too), a *.tmp leftover, an
//    unrelated file or a name that looks like a segment and is not, with arbitrary bytes,
//    optionally with the header (magic, version 1 or 2, size, sequence, CRC) and the records'
//    lengths, types and checksums fixed up so the fuzzer gets past them. Opening must succeed or
//    throw file_storage_corruption; nothing else (no other exception, no crash, no undefined
//    behaviour).
//
//  - structured: a valid log (several groups with checkpoints, hard states, entries,
//    truncations, compactions and removals, over several segments; in version 2 a round record
//    ends each checkpoint and starts each write round; optionally version 1 segments first, or
//    only), encoded here independently of the library's encoder from docs/storage.md ("The
//    shared log (Multi-Raft)") and the top of shared_log.hpp, with zeros written ahead after the
//    tail's records, and ONE kind of damage a crash or a bad disk can
//    leave: the last round cut short; a zeroed hole in the last round (valid records of that
//    round may follow it); a flipped byte or a zeroed hole in an earlier record; zeros after a
//    segment; a missing segment; a round number that does not increase; a torn tail or a hole in
//    a version 1 last segment; a damaged header; leftover files. A model of the documented
//    recovery rules predicts the outcome exactly: refused, or accepted with each group's hard
//    state, base and entries.
//
// After every successful open, for both kinds:
//   - every group of groups() loads, with entries contiguous from its base;
//   - opening again gives the same groups and states (the cut of a torn tail is complete);
//   - the log is usable: a group (old or new) appends, truncates, compacts, stages a hard state
//     and flushes, another group may be removed; reopened, every group is what a model says.
// FUZZ_TRACE=1 prints what each open did and, for structured inputs, the damage.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "fuzz_files.hpp"
#include "fuzz_support.hpp"
#include "raft/storage/shared_log.hpp"

namespace {

namespace fs = std::filesystem;
using fuzz::bytes;
using fuzz::put32;
using fuzz::put64;

// ---- the documented format (docs/storage.md), written here independently ----------------------

constexpr std::size_t segment_header = 32;

/// Record types (in a namespace: their names would hide ::remove, ::truncate and ::round).
namespace type {
enum : std::uint8_t { checkpoint = 1, hard_state, entry, truncate, compact, remove, round };
}

std::uint32_t get32(const bytes& b, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t(b[at + i]) << (8 * i);
  return v;
}
std::uint32_t crc(const std::byte* p, std::size_t n) { return raft::detail::crc32c(p, n); }

/// Magic, version, header size, sequence number, CRC-32C of bytes 0..23, 4 reserved bytes.
void fix_segment_header(bytes& b, std::uint64_t seq, std::uint32_t version) {
  std::memcpy(b.data(), "RAFTMLOG", 8);
  put32(b, 8, version);
  put32(b, 12, segment_header);
  put64(b, 16, seq);
  put32(b, 24, crc(b.data(), 24));
}

/// u32 body length, u32 CRC-32C of the length field and the body, then the body.
void fix_record_crc(bytes& b, std::size_t at) {
  const std::uint32_t len = get32(b, at);
  put32(b, at + 4, raft::detail::crc32c_update(crc(b.data() + at, 4), b.data() + at + 8, len));
}

/// The u64 fields after the type byte, per type (an entry also has a kind byte and a payload).
std::size_t field_count(std::uint8_t type) {
  switch (type) {
    case type::checkpoint: return 5;
    case type::hard_state: return 2;
    case type::entry: return 2;
    case type::truncate: return 1;
    case type::compact: return 2;
    case type::remove: return 0;
    case type::round: return 1;
    default: return 0;
  }
}

std::string segment_name(std::uint64_t seq) {
  char name[48];
  std::snprintf(name, sizeof name, "shared-%020llu.log", static_cast<unsigned long long>(seq));
  return name;
}

struct record {
  std::uint64_t group = 0;
  std::uint8_t type = 0;
  std::vector<std::uint64_t> fields;
  std::uint8_t kind = 0;  // entries only
  bytes payload;          // entries only
};

bytes encode(const record& r) {
  const std::size_t body = 9 + 8 * r.fields.size() + (r.type == type::entry ? 1 + r.payload.size() : 0);
  bytes b(8 + body);
  put32(b, 0, std::uint32_t(body));
  put64(b, 8, r.group);
  b[16] = std::byte{r.type};
  std::size_t at = 17;
  for (const std::uint64_t f : r.fields) put64(b, at, f), at += 8;
  if (r.type == type::entry) {
    b[at++] = std::byte{r.kind};
    std::copy(r.payload.begin(), r.payload.end(), b.begin() + std::ptrdiff_t(at));
  }
  fix_record_crc(b, 0);
  return b;
}

// ---- a group's state, as the documented records define it ---------------------------------------

using fuzz::entry;

/// One group: hard state, base, and the entries (base, last]; an empty slot is an entry a
/// checkpoint promised that no record has supplied (yet).
struct group_model {
  std::uint64_t term = 0, vote = 0, base = 0, base_term = 0;
  std::vector<std::optional<entry>> entries;
  [[nodiscard]] std::uint64_t last() const { return base + entries.size(); }
  [[nodiscard]] bool empty() const { return term == 0 && vote == 0 && base == 0 && entries.empty(); }
  friend bool operator==(const group_model&, const group_model&) = default;

  void compact_through(std::uint64_t c, std::uint64_t t) {
    if (c <= base) return;
    if (c >= last())
      entries.clear();
    else
      entries.erase(entries.begin(), entries.begin() + std::ptrdiff_t(c - base));
    base = c;
    base_term = t;
  }
  void truncate_after(std::uint64_t t) {
    if (t < last()) entries.resize(std::size_t(t - base));
  }
};

using log_model = std::map<std::uint64_t, group_model>;  // group id -> state (non-empty ones)

/// Applies one record (not a round record) to its group; false if the record cannot follow
/// what came before (a refused log).
bool apply(log_model& groups, const record& r) {
  group_model& g = groups[r.group];
  switch (r.type) {
    case type::checkpoint: {
      const std::uint64_t base = r.fields[2], last = r.fields[4];
      if (base < g.base || last < base) return false;
      g.compact_through(base, r.fields[3]);
      g.truncate_after(last);
      if (last > g.last()) g.entries.resize(std::size_t(last - g.base));  // held by deleted segments
      g.term = r.fields[0];
      g.vote = r.fields[1];
      return true;
    }
    case type::hard_state: g.term = r.fields[0], g.vote = r.fields[1]; return true;
    case type::entry:
      if (r.fields[1] != g.last() + 1) return false;
      g.entries.push_back(entry{r.fields[0], r.fields[1], r.kind, r.payload});
      return true;
    case type::truncate:
      if (r.fields[0] < g.base) return false;
      g.truncate_after(r.fields[0]);
      return true;
    case type::compact: g.compact_through(r.fields[0], r.fields[1]); return true;
    case type::remove: g = group_model{}; return true;
    default: return false;
  }
}

std::string describe(const log_model& m) {
  std::string s;
  for (const auto& [id, g] : m) {
    s += "\n  group " + std::to_string(id) + ": term " + std::to_string(g.term) + " vote " + std::to_string(g.vote) +
         " base " + std::to_string(g.base) + "/" + std::to_string(g.base_term) + " entries [";
    for (const auto& e : g.entries)
      s += e ? " " + std::to_string(e->index) + "@" + std::to_string(e->term) + "k" + std::to_string(e->kind) + "+" +
                   std::to_string(e->payload.size())
             : std::string(" ?");
    s += " ]";
  }
  return s.empty() ? "\n  (no groups)" : s;
}

// ---- the library's view ------------------------------------------------------------------------

raft::shared_log_options log_options(std::size_t segment_bytes, std::size_t prefill) {
  raft::shared_log_options o;
  // The page cache is the disk here: a hook stands in for every sync, so the log behaves as it
  // does with syncs (zeros written ahead of the tail included) without waiting for the disk.
  o.fsync = true;
  o.sync_hook = [](int) { return 0; };
  o.segment_bytes = segment_bytes;
  o.prefill_bytes = prefill;
  return o;
}

/// Every group of groups(), loaded: what an open of the directory recovered.
log_model summarize(raft::shared_log& log) {
  log_model m;
  for (const raft::group_id id : log.groups()) {
    raft::persistent_state ps;
    try {
      auto g = log.open_group(id);
      ps = g.load();
    } catch (const std::exception& e) {
      fuzz::fail("group " + std::to_string(id.value) + " listed by groups() does not load: " + e.what());
    }
    group_model& g = m[id.value];
    g.term = ps.state.term.value;
    g.vote = ps.state.voted_for.value;
    g.base = ps.base_index.value;
    g.base_term = ps.base_term.value;
    for (const auto& e : ps.entries) {
      const auto p = e.data.bytes();
      FUZZ_CHECK(e.index.value == g.last() + 1, "group " + std::to_string(id.value) +
                                                    ": loaded entries are not contiguous from the base" + describe(m));
      FUZZ_CHECK(std::uint8_t(e.kind) <= 2, "an entry of an unknown kind");
      g.entries.push_back(entry{e.term.value, e.index.value, std::uint8_t(e.kind), bytes(p.begin(), p.end())});
    }
    FUZZ_CHECK(!g.empty(), "groups() lists group " + std::to_string(id.value) + ", which has no state");
  }
  return m;
}

/// Opens the directory: what it recovered, or nullopt for file_storage_corruption. Anything
/// else is a failure.
std::optional<log_model> try_open(const fs::path& dir, const raft::shared_log_options& o, std::string* why = nullptr) {
  std::optional<raft::shared_log> log;
  try {
    log.emplace(dir, o);
  } catch (const raft::file_storage_corruption& e) {
    if (why) *why = e.what();
    FUZZ_CHECK(std::string(e.what()).find(e.file().filename().string()) != std::string::npos,
               "a corruption error that does not name its file: " + std::string(e.what()));
    return std::nullopt;
  } catch (const std::exception& e) {
    fuzz::fail(std::string("opening threw something other than file_storage_corruption: ") + e.what());
  }
  return summarize(*log);
}

void flush(raft::shared_log_group& g) {
  asio::io_context io;
  std::exception_ptr error;
  bool done = false;
  asio::co_spawn(io, g.flush(), [&](std::exception_ptr e) { error = e, done = true; });
  io.run();
  FUZZ_CHECK(done, "flush did not complete");
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      fuzz::fail(std::string("flush failed after a successful open: ") + e.what());
    }
  }
}

/// The largest number of a segment in `dir`.
std::uint64_t last_segment_number(const fs::path& dir) {
  std::uint64_t last = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.size() == segment_name(0).size() && name.starts_with("shared-") && name.ends_with(".log"))
      last = std::max<std::uint64_t>(last, std::stoull(name.substr(7, 20)));
  }
  return last;
}

/// After a successful open: open again (stable), then change one group, maybe remove another,
/// and open again.
void check_usable(const fs::path& dir, const log_model& first, fuzz::input& in) {
  const auto o = log_options(160 + in.below(2048), in.flag() ? 0 : in.below(3000));
  std::string why;
  const auto again = try_open(dir, o, &why);
  FUZZ_CHECK(again.has_value(), "a directory that opened once is refused the second time: " + why);
  FUZZ_CHECK(*again == first, "a second open differs:" + describe(first) + "\nthen:" + describe(*again));

  // The group to change: one that exists, or a new one.
  std::uint64_t id = 4242;
  if (!first.empty() && in.flag()) {
    auto it = first.begin();
    std::advance(it, std::ptrdiff_t(in.below(first.size())));
    id = it->first;
  }
  log_model model = first;
  group_model& g = model[id];
  // Far-out indices (a fuzzed record) would overflow the model below, and a far-out segment
  // number (a fuzzed name) may leave the writer no number for its next segment: it then fails
  // the log on purpose (numbers never wrap).
  if (g.last() > (std::uint64_t{1} << 60) || last_segment_number(dir) > (std::uint64_t{1} << 60)) return;
  std::optional<std::uint64_t> removed;
  try {
    raft::shared_log log(dir, o);
    {
      auto h = log.open_group(raft::group_id{id});
      (void)h.load();
      const int ops = 1 + int(in.below(5));
      for (int k = 0; k < ops; ++k) {
        const std::uint64_t term = std::max<std::uint64_t>(1, g.term);
        switch (in.below(5)) {
          case 0:
          case 1: {  // append 1..4 entries
            std::vector<raft::log_entry> es;
            const int n = 1 + int(in.below(4));
            for (int j = 0; j < n; ++j) {
              const std::uint64_t index = g.last() + 1;
              bytes payload(in.below(200), std::byte(index & 0xFF));
              es.push_back({raft::term_t{term}, raft::index_t{index}, raft::entry_kind::command, raft::buffer{payload}});
              g.entries.push_back(entry{term, index, 0, payload});
            }
            h.append(es);
            break;
          }
          case 2: {  // truncate after an index at or above the base
            const std::uint64_t at = g.base + in.below(std::size_t(std::min<std::uint64_t>(g.entries.size() + 2, 300)));
            h.truncate_after(raft::index_t{at});
            g.truncate_after(at);
            break;
          }
          case 3: {  // compact through an index (past the end: the log is emptied)
            const std::uint64_t at = g.base + in.below(std::size_t(std::min<std::uint64_t>(g.entries.size() + 3, 300)));
            h.compact_through(raft::index_t{at}, raft::term_t{term});
            g.compact_through(at, term);
            break;
          }
          case 4: {  // a new term and vote, with the next flush
            g.term = term + in.below(2);
            g.vote = in.below(4);
            h.stage_hard_state({raft::term_t{g.term}, raft::node_id{g.vote}});
            break;
          }
        }
        if (in.flag()) flush(h);
      }
      flush(h);
    }
    // Maybe remove another group (durable when it returns).
    if (model.size() > 1 && in.below(4) == 0) {
      auto it = model.begin();
      std::advance(it, std::ptrdiff_t(in.below(model.size())));
      if (it->first != id) {
        removed = it->first;
        log.remove_group(raft::group_id{*removed});
      }
    }
  } catch (const std::system_error& e) {
    // A far-out round number (a fuzzed record) may leave the writer no number for its next round:
    // it then fails the log on purpose (numbers never wrap), and the test of this input ends.
    if (e.code() == std::errc::value_too_large) return;
    throw;
  }
  if (removed) model.erase(*removed);
  std::erase_if(model, [](const auto& kv) { return kv.second.empty(); });
  const auto after = try_open(dir, o, &why);
  FUZZ_CHECK(after.has_value(), "the directory is refused after changes to a group: " + why);
  FUZZ_CHECK(*after == model, "after changes to group " + std::to_string(id) + (removed ? " and removing " + std::to_string(*removed) : "") +
                                  ": expected" + describe(model) + "\nopened:" + describe(*after));
}

void check_no_tmp(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    FUZZ_CHECK(e.path().extension() != ".tmp", "opening left a .tmp file: " + e.path().string());
}

// ---- raw inputs ----------------------------------------------------------------------------------

/// Walks the records by their length fields and fixes what `fix` asks, so the fuzzer reaches the
/// checks behind the checksums.
void fix_records(bytes& b, std::uint8_t fix) {
  std::size_t at = segment_header;
  while (at + 17 <= b.size()) {
    std::uint32_t len = get32(b, at);
    if (fix & 8) b[at + 16] = std::byte(1 + std::uint8_t(b[at + 16]) % 7);  // a known type
    const auto t = std::uint8_t(b[at + 16]);
    if ((fix & 0x20) && t >= 1 && t <= 7 && t != type::entry) {  // its exact size
      const std::size_t want = 9 + 8 * field_count(t);
      if (want <= b.size() - at - 8) put32(b, at, len = std::uint32_t(want));
    }
    if (len < 9 || len > b.size() - at - 8) break;
    if ((fix & 4) && t == type::entry && len >= 26) b[at + 33] = std::byte(std::uint8_t(b[at + 33]) % 3);
    fix_record_crc(b, at);
    at += 8 + len;
  }
}

void run_raw(fuzz::input& in) {
  const fs::path dir = fuzz::fresh_dir();
  const int files = int(in.below(7));
  for (int k = 0; k < files; ++k) {
    const auto kind = in.below(8);
    const std::uint8_t fix = in.u8();
    std::uint64_t seq = 0;
    std::string name;
    if (kind <= 4) {
      seq = (fix & 0x80) ? in.u64() : 1 + in.below(8);
      name = segment_name(seq);
    } else if (kind == 5) {
      name = segment_name(1 + in.below(8)) + ".tmp";
    } else if (kind == 6) {
      name = "notes.txt";
    } else {
      name = in.flag() ? "shared-0000000000000000001x.log" : "shared-1.log";
    }
    const auto raw = in.block();
    bytes b(raw.begin(), raw.end());
    if (kind <= 4) {
      if ((fix & 1) && b.size() >= segment_header) fix_segment_header(b, seq, (fix & 0x10) ? 1 : 2);
      if (fix & 2) fix_records(b, fix);
    }
    fuzz::write_file(dir / name, b);
  }
  std::string why;
  const auto l = try_open(dir, log_options(160 + in.below(2048), in.flag() ? 0 : in.below(3000)), &why);
  if (std::getenv("FUZZ_TRACE"))
    std::fprintf(stderr, "raw (%d files): %s\n", files, l ? ("opened:" + describe(*l)).c_str() : ("refused: " + why).c_str());
  if (!l) return;
  check_no_tmp(dir);
  check_usable(dir, *l, in);
}

// ---- structured inputs, with a model of the recovery rules ------------------------------------

/// One record as written: in which segment, where, and what.
struct placed {
  std::size_t segment;
  std::size_t offset, size;
  record r;
};

struct segment_file {
  std::uint64_t seq = 0;
  std::uint32_t version = 2;
  bytes file;      // as on disk, damage included
  bytes original;  // as written
  std::size_t records_end = segment_header;
  bool present = true;
};

/// Writes a valid log the way the documented writer does: every segment starts with a
/// checkpoint of every group with state; in version 2 segments a round record ends the
/// checkpoint and every write round starts with one, numbered upwards through the whole log (a
/// round that reaches a new segment starts its part there with a round record too).
class log_writer {
 public:
  std::vector<segment_file> segs;
  std::vector<placed> recs;
  log_model state;  // what the records say so far (every group's state)
  std::uint64_t round_no;

  log_writer(std::uint64_t first_seq, std::uint64_t first_round, std::size_t v1_segments)
      : round_no(first_round), next_seq_(first_seq), v1_segments_(v1_segments) {}

  void start_segment() {
    segment_file s;
    s.seq = next_seq_++;
    s.version = segs.size() < v1_segments_ ? 1 : 2;
    s.file.resize(segment_header);
    fix_segment_header(s.file, s.seq, s.version);
    segs.push_back(std::move(s));
    in_round_ = false;
    for (const auto& [id, g] : state)
      if (!g.empty()) place({id, type::checkpoint, {g.term, g.vote, g.base, g.base_term, g.last()}, 0, {}});
    if (segs.back().version >= 2) place({0, type::round, {++round_no}, 0, {}});
    records_start_ = segs.back().records_end;
  }
  void start_round() { in_round_ = false; }
  /// A record of a round (starting the round's part in this segment with a round record first).
  void write(const record& r) {
    if (segs.back().version >= 2 && !in_round_) {
      place({0, type::round, {++round_no}, 0, {}});
      in_round_ = true;
    }
    place(r);
    FUZZ_CHECK(apply(state, r), "the harness wrote an invalid record");
  }
  /// Records after the checkpoint in the last segment (bytes).
  [[nodiscard]] std::size_t records_in_tail() const { return segs.back().records_end - records_start_; }

 private:
  void place(const record& r) {
    segment_file& s = segs.back();
    const bytes b = encode(r);
    recs.push_back({segs.size() - 1, s.file.size(), b.size(), r});
    s.file.insert(s.file.end(), b.begin(), b.end());
    s.records_end = s.file.size();
  }
  std::uint64_t next_seq_;
  std::size_t v1_segments_;
  bool in_round_ = false;
  std::size_t records_start_ = segment_header;
};

constexpr std::uint64_t group_ids[] = {1, 2, 3, 7, 1000, std::uint64_t{1} << 40};

/// A valid log from the fuzzer's choices.
log_writer write_log(fuzz::input& in, std::size_t v1_segments) {
  const std::uint64_t first_seq = in.flag() ? 1 : 1 + in.below(40);
  const std::uint64_t first_round = in.flag() ? 0 : in.below(1000);
  log_writer w(first_seq, first_round, v1_segments);
  // Groups may start with state left by segments reclaimed before (hard state and base only:
  // their live entries would still be in those segments).
  const std::size_t groups = 1 + in.below(4), first_id = in.below(3);  // ids group_ids[first_id...]
  for (std::size_t k = 0; k < groups; ++k) {
    if (in.below(3) != 0) continue;
    group_model& g = w.state[group_ids[first_id + k]];
    g.term = 1 + in.below(4);
    g.vote = in.below(4);
    g.base = in.below(20);
    g.base_term = g.base == 0 ? 0 : 1 + in.below(3);
  }
  w.start_segment();
  const std::size_t rounds = 1 + in.below(12);
  for (std::size_t r = 0; r < rounds; ++r) {
    w.start_round();
    const std::size_t ops = 1 + in.below(4);
    for (std::size_t k = 0; k < ops; ++k) {
      if (w.records_in_tail() > 0 && w.segs.size() < 5 && in.below(5) == 0) w.start_segment();
      const std::uint64_t id = group_ids[first_id + in.below(groups)];
      const group_model& g = w.state[id];
      const std::uint64_t term = std::max<std::uint64_t>(1, g.term);
      const std::uint8_t shape = in.u8();
      switch (shape % 8) {
        case 0:
        case 1:
        case 2: {  // entries
          const std::size_t n = 1 + (shape >> 3) % 3;
          for (std::size_t j = 0; j < n; ++j) {
            const std::uint64_t index = w.state[id].last() + 1;
            bytes payload((shape >> 2) % 30 + j);
            for (std::size_t p = 0; p < payload.size(); ++p) payload[p] = std::byte((index * 131 + p * 7 + id) & 0xFF);
            w.write({id, type::entry, {term, index}, std::uint8_t((shape >> 5) % 3), std::move(payload)});
          }
          break;
        }
        case 3:
        case 4:  // a hard state
          w.write({id, type::hard_state, {term + (shape >> 7), std::uint64_t((shape >> 3) % 4)}, 0, {}});
          break;
        case 5:  // a truncation of written entries
          if (!g.entries.empty()) w.write({id, type::truncate, {g.base + in.below(g.entries.size())}, 0, {}});
          break;
        case 6:  // a compaction, maybe past the last entry
          w.write({id, type::compact, {g.base + 1 + in.below(g.entries.size() + 2), term}, 0, {}});
          break;
        case 7:  // removal (rare)
          if ((shape >> 3) % 4 == 0) w.write({id, type::remove, {}, 0, {}});
          break;
      }
    }
  }
  if (in.below(8) == 0 && w.segs.size() < 6) w.start_segment();  // a crash right after a new segment
  return w;
}

enum class damage {
  none, cut_last_round, hole_last_round, earlier_record, zero_tail, missing_segment, round_not_increasing,
  v1_torn_tail, v1_hole, bad_header, leftovers, count
};
const char* const damage_name[] = {"none",           "cut_last_round", "hole_last_round", "earlier_record",
                                   "zero_tail",      "missing_segment", "round_not_increasing",
                                   "v1_torn_tail",   "v1_hole",        "bad_header",      "leftovers"};

void zero(bytes& b, std::size_t from, std::size_t to) {
  std::fill(b.begin() + std::ptrdiff_t(from), b.begin() + std::ptrdiff_t(to), std::byte{0});
}

/// The model of recovery (docs/storage.md, "Recovery", and the top of shared_log.hpp): the state
/// the open must recover from these files, or nullopt if it must refuse them. A record counts as
/// bad if its bytes are not all there as written; the first bad one of a segment is where
/// reading it stops. In version 2 the checkpoint, up to the segment's first round record, was
/// synced before the segment got its name: it cannot be torn.
std::optional<log_model> expected_recovery(const log_writer& w, std::string& note) {
  std::vector<std::size_t> present;
  for (std::size_t k = 0; k < w.segs.size(); ++k)
    if (w.segs[k].present) present.push_back(k);
  for (std::size_t k = 1; k < present.size(); ++k)
    if (w.segs[present[k]].seq != w.segs[present[k - 1]].seq + 1) return note = "a missing segment", std::nullopt;
  log_model m;
  std::uint64_t last_round = 0;
  for (std::size_t k = 0; k < present.size(); ++k) {
    const std::size_t si = present[k];
    const segment_file& s = w.segs[si];
    const bool last_file = k + 1 == present.size();
    if (s.file.size() < segment_header || !std::equal(s.file.begin(), s.file.begin() + 28, s.original.begin()))
      return note = "a bad header", std::nullopt;
    auto intact = [&](const placed& p) {
      return p.offset + p.size <= s.file.size() &&
             std::equal(s.file.begin() + std::ptrdiff_t(p.offset), s.file.begin() + std::ptrdiff_t(p.offset + p.size),
                        s.original.begin() + std::ptrdiff_t(p.offset));
    };
    // Where reading stops: the first bad record, or the end of the records if more bytes follow.
    std::optional<std::size_t> bad;
    for (const placed& p : w.recs)
      if (p.segment == si && !intact(p)) {
        if (p.offset < s.file.size()) bad = p.offset;  // else the file ends cleanly before it
        break;
      }
    if (!bad && s.file.size() > s.records_end) bad = s.records_end;
    if (bad) {
      if (!last_file) return note = "a bad record before the last segment", std::nullopt;
      if (s.version >= 2 && std::none_of(w.recs.begin(), w.recs.end(), [&](const placed& p) {
            return p.segment == si && p.r.type == type::round && p.offset < *bad;
          }))
        return note = "a bad record in the checkpoint", std::nullopt;
      for (const placed& p : w.recs)
        if (p.segment == si && p.offset > *bad && intact(p) && (s.version == 1 || p.r.type == type::round))
          return note = s.version == 1 ? "a valid record after a bad one (version 1)" : "a round after a bad record",
                 std::nullopt;
      note = "cut at byte " + std::to_string(*bad) + " of " + segment_name(s.seq);
    }
    const std::size_t stop = bad.value_or(s.file.size());  // a file cut between records ends there
    if (s.version >= 2 && std::none_of(w.recs.begin(), w.recs.end(), [&](const placed& p) {
          return p.segment == si && p.r.type == type::round && p.offset < stop;
        }))
      return note = "a checkpoint without its round record", std::nullopt;
    for (const placed& p : w.recs) {
      if (p.segment != si || p.offset >= stop) continue;
      if (p.r.type == type::round) {
        if (p.r.fields[0] <= last_round) return note = "a round number that does not increase", std::nullopt;
        last_round = p.r.fields[0];
      } else if (!apply(m, p.r)) {
        return note = "a record that cannot follow", std::nullopt;
      }
    }
  }
  for (const auto& [id, g] : m)
    for (const auto& e : g.entries)
      if (!e) return note = "group " + std::to_string(id) + ": an entry a checkpoint promised is missing", std::nullopt;
  std::erase_if(m, [](const auto& kv) { return kv.second.empty(); });
  return m;
}

/// The bytes of the last round in the last segment (its round record to its last record), or
/// of all its records if it has no round.
std::pair<std::size_t, std::size_t> last_round_span(const log_writer& w) {
  const std::size_t last = w.segs.size() - 1;
  std::size_t start = segment_header;
  bool seen = false;
  for (const placed& p : w.recs)
    if (p.segment == last && p.r.type == type::round) start = p.offset, seen = true;
  if (!seen)
    for (const placed& p : w.recs)
      if (p.segment == last) {
        start = p.offset;
        break;
      }
  return {start, w.segs[last].records_end};
}

void damage_log(log_writer& w, damage what, fuzz::input& in, std::vector<std::pair<std::string, bytes>>& extra) {
  segment_file& tail = w.segs.back();
  const auto [start, end] = last_round_span(w);
  switch (what) {
    case damage::none:
    case damage::count: break;
    case damage::cut_last_round:
    case damage::v1_torn_tail: {  // a torn write: the file ends inside the last round
      if (what == damage::v1_torn_tail && in.flag()) {
        tail.file.resize(tail.file.size() + 1 + in.below(100));  // or zeros after it
        break;
      }
      tail.file.resize(start + in.below(end - start + 1));
      break;
    }
    case damage::hole_last_round: {  // pages of the last round missing, later ones there
      if (end == start) break;
      if (in.flag()) {  // exactly one record (maybe the round record) zeroed
        std::vector<const placed*> in_round;
        for (const placed& p : w.recs)
          if (p.segment == w.segs.size() - 1 && p.offset >= start) in_round.push_back(&p);
        const placed& p = *in_round[in.below(in_round.size())];
        zero(tail.file, p.offset, p.offset + p.size);
      } else {
        const std::size_t a = start + in.below(end - start);
        zero(tail.file, a, a + 1 + in.below(std::min<std::size_t>(end - a, 200)));
      }
      break;
    }
    case damage::earlier_record:
    case damage::v1_hole: {  // one record before the last round: a flipped byte or a hole
      std::vector<const placed*> earlier;
      for (const placed& p : w.recs)
        if (what == damage::v1_hole ? p.segment == w.segs.size() - 1 && p.offset + p.size < tail.records_end
                                    : p.segment < w.segs.size() - 1 || p.offset < start)
          earlier.push_back(&p);
      if (earlier.empty()) break;
      const placed& p = *earlier[in.below(earlier.size())];
      bytes& f = w.segs[p.segment].file;
      const std::size_t at = p.offset + in.below(p.size);
      if (in.flag())
        f[at] ^= std::byte(1u << in.below(8));
      else
        zero(f, at, at + 1 + in.below(p.offset + p.size - at));
      break;
    }
    case damage::zero_tail: {  // zeros after the records: the last segment's are written ahead
      segment_file& s = w.segs.size() == 1 || in.flag() ? tail : w.segs[in.below(w.segs.size() - 1)];
      s.file.resize(s.file.size() + 1 + in.below(200));
      break;
    }
    case damage::missing_segment: w.segs[in.below(w.segs.size())].present = false; break;
    case damage::round_not_increasing: {  // re-encoded valid, with a number not above the last
      std::vector<placed*> rounds;
      for (placed& p : w.recs)
        if (p.r.type == type::round) rounds.push_back(&p);
      if (rounds.empty()) break;
      const std::size_t k = in.below(rounds.size());
      const std::uint64_t before = k == 0 ? 0 : rounds[k - 1]->r.fields[0];
      placed& p = *rounds[k];
      p.r.fields[0] = before - std::min<std::uint64_t>(before, in.below(3));
      const bytes b = encode(p.r);
      segment_file& s = w.segs[p.segment];
      std::copy(b.begin(), b.end(), s.file.begin() + std::ptrdiff_t(p.offset));
      std::copy(b.begin(), b.end(), s.original.begin() + std::ptrdiff_t(p.offset));
      break;
    }
    case damage::bad_header: {
      segment_file& s = w.segs[in.below(w.segs.size())];
      if (in.below(4) == 0)
        s.file.resize(in.below(segment_header));
      else
        s.file[in.below(28)] ^= std::byte(1u << in.below(8));
      break;
    }
    case damage::leftovers: {  // an interrupted segment creation, and files that are not segments
      const auto junk = in.block();
      const bytes j(junk.begin(), junk.end());
      extra.emplace_back(segment_name(w.segs.back().seq + 1) + ".tmp", j);
      extra.emplace_back(segment_name(w.segs.front().seq) + ".tmp", j);
      extra.emplace_back("notes.txt", j);
      extra.emplace_back("shared-1.log", j);
      break;
    }
  }
}

void run_structured(fuzz::input& in) {
  const fs::path dir = fuzz::fresh_dir();
  const auto what = static_cast<damage>(in.below(std::size_t(damage::count)));
  // Version 1 segments: none, the first few (written before an upgrade), or all of them.
  const bool v1_damage = what == damage::v1_torn_tail || what == damage::v1_hole;
  const auto mode = v1_damage ? 2 : in.below(6);
  const std::size_t v1_segments = mode == 2 ? 100 : mode == 1 ? 1 + in.below(3) : 0;
  log_writer w = write_log(in, v1_segments);
  for (auto& s : w.segs) s.original = s.file;
  // The tail of a version 2 log ends in zeros written ahead (maybe not yet, or trimmed).
  if (w.segs.back().version == 2 && in.flag()) w.segs.back().file.resize(w.segs.back().file.size() + in.below(400));
  std::vector<std::pair<std::string, bytes>> extra;
  damage_log(w, what, in, extra);
  for (const auto& s : w.segs)
    if (s.present) fuzz::write_file(dir / segment_name(s.seq), s.file);
  for (const auto& [name, b] : extra) fuzz::write_file(dir / name, b);

  std::string note = "no damage seen";
  const auto expected = expected_recovery(w, note);
  std::string why;
  const auto got = try_open(dir, log_options(160 + in.below(2048), in.flag() ? 0 : in.below(3000)), &why);
  const std::string context = std::string(" (damage: ") + damage_name[std::size_t(what)] + ", " +
                              std::to_string(w.segs.size()) + " segments from " + std::to_string(w.segs.front().seq) +
                              " (" + std::to_string(v1_segments) + " of version 1), " + std::to_string(w.recs.size()) +
                              " records; model: " + note + ")";
  if (std::getenv("FUZZ_TRACE"))
    std::fprintf(stderr, "structured%s: %s\n", context.c_str(), got ? ("opened:" + describe(*got)).c_str() : ("refused: " + why).c_str());
  if (!expected) {
    FUZZ_CHECK(!got, "the log opened where it must be refused" + context + ":" + describe(*got));
    return;
  }
  FUZZ_CHECK(got.has_value(), "the log was refused where it must open" + context + ": " + why);
  FUZZ_CHECK(*got == *expected, "the wrong state was recovered" + context + ": expected" + describe(*expected) +
                                    "\nopened:" + describe(*got));
  check_no_tmp(dir);
  // The last segment was cut at its first bad record; after a version 1 tail, a new segment.
  const auto tail = std::find_if(w.segs.rbegin(), w.segs.rend(), [](const segment_file& s) { return s.present; });
  if (tail != w.segs.rend() && tail->version == 1)
    FUZZ_CHECK(fs::exists(dir / segment_name(tail->seq + 1)), "no new segment after a version 1 tail" + context);
  check_usable(dir, *got, in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::input in(data, size);
  if (in.u8() & 1)
    run_structured(in);
  else
    run_raw(in);
  return 0;
}
