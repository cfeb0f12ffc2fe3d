// tests/fuzz/fuzz_file_storage.cpp - libFuzzer harness for raft::file_storage recovery: load() of
// a directory whose files the fuzzer wrote.
//
// Two kinds of input (chosen by the first byte):
//
//  - raw: up to 8 files, each a name kind (hard_state, base, a segment or a snapshot file with
//    any index, a *.tmp leftover, an unrelated file, a name that looks like one and is not) and
//    arbitrary bytes, optionally with magic numbers, lengths and checksums fixed up so the fuzzer
//    gets past them. load() must return a well-formed log or throw file_storage_corruption;
//    nothing else (no other exception, no crash, no undefined behaviour, no allocation the files
//    cannot back), and the snapshot it accepts must read back whole.
//
//  - structured: a valid directory (hard state, compaction base, a log split over segments, a
//    snapshot, as the documented format describes them, encoded here independently of the
//    library's encoder) with one kind of damage a crash or a bad disk can leave: a torn last
//    segment, a flipped byte anywhere, a zero-filled tail, a missing segment, leftover *.tmp
//    files, a damaged hard_state or base, a flipped or cut snapshot, an older snapshot left
//    behind, a snapshot below the base. A model of the documented recovery rules (docs/storage.md,
//    "Recovery") predicts the outcome exactly: the entries and the snapshot load() returns, or
//    that it refuses with file_storage_corruption.
//
// After every successful load, for both kinds:
//   - loading again (a new file_storage on the same directory) gives the same state: the repair
//     of a torn tail is complete and stable;
//   - the storage is usable: appends, truncations, compactions, snapshot commits and hard-state
//     writes chosen by the fuzzer, flushed, then reloaded, give exactly what a model says.
// FUZZ_TRACE=1 prints, for structured inputs, the damage and what load() did.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
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
#include "raft/storage/file.hpp"

namespace {

namespace fs = std::filesystem;
using fuzz::bytes;
using fuzz::put32;
using fuzz::put64;

// ---- the documented format (docs/storage.md), written here independently ----------------------

constexpr std::size_t segment_header = 32;
constexpr std::size_t small_file = 40;

std::uint32_t get32(const bytes& b, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t(b[at + i]) << (8 * i);
  return v;
}
std::uint32_t crc(const std::byte* p, std::size_t n) { return raft::detail::crc32c(p, n); }

void fix_segment_header(bytes& b, std::uint64_t first) {
  std::memcpy(b.data(), "RAFTSEGM", 8);
  put32(b, 8, 1);
  put32(b, 12, segment_header);
  put64(b, 16, first);
  put32(b, 24, crc(b.data(), 24));
}

bytes segment_header_bytes(std::uint64_t first) {
  bytes b(segment_header);
  fix_segment_header(b, first);
  return b;
}

/// length, crc, term, index, kind, payload; crc over the length field and the body.
void fix_record_crc(bytes& b, std::size_t at) {
  const std::uint32_t len = get32(b, at);
  const std::uint32_t c = raft::detail::crc32c_update(crc(b.data() + at, 4), b.data() + at + 8, len);
  put32(b, at + 4, c);
}

void append_record(bytes& b, std::uint64_t term, std::uint64_t index, std::uint8_t kind,
                   const bytes& payload) {
  const std::size_t at = b.size();
  b.resize(at + 25 + payload.size());
  put32(b, at, static_cast<std::uint32_t>(17 + payload.size()));
  put64(b, at + 8, term);
  put64(b, at + 16, index);
  b[at + 24] = std::byte{kind};
  std::copy(payload.begin(), payload.end(), b.begin() + std::ptrdiff_t(at + 25));
  fix_record_crc(b, at);
}

void fix_small_file(bytes& b, const char* magic) {
  std::memcpy(b.data(), magic, 8);
  put32(b, 8, 1);
  put32(b, 32, crc(b.data(), 32));
}

bytes small_file_bytes(const char* magic, std::uint64_t a, std::uint64_t c) {
  bytes b(small_file);
  put64(b, 16, a);
  put64(b, 24, c);
  fix_small_file(b, magic);
  return b;
}

std::string segment_name(std::uint64_t first) {
  char name[48];
  std::snprintf(name, sizeof name, "log-%020llu.seg", static_cast<unsigned long long>(first));
  return name;
}

std::string snapshot_name(std::uint64_t index) {
  char name[48];
  std::snprintf(name, sizeof name, "snapshot-%020llu.snap", static_cast<unsigned long long>(index));
  return name;
}

/// Header (magic, version, metadata length, CRC of bytes 0..15, reserved), metadata, data,
/// trailer (u64 data size, CRC-32C of everything before the trailer's CRC field).
void fix_snapshot_header(bytes& b, std::uint32_t meta_len) {
  std::memcpy(b.data(), "RAFTSNAP", 8);
  put32(b, 8, 1);
  put32(b, 12, meta_len);
  put32(b, 16, crc(b.data(), 16));
}
void fix_snapshot_trailer(bytes& b, std::uint64_t meta_len) {
  put64(b, b.size() - 12, b.size() - 44 - meta_len);
  put32(b, b.size() - 4, crc(b.data(), b.size() - 4));
}

bytes snapshot_meta_bytes(std::uint64_t index, std::uint64_t term) {
  const raft::snapshot_meta m{raft::index_t{index}, raft::term_t{term},
                              raft::configuration{{raft::node_id{1}, raft::node_id{2}, raft::node_id{3}}, {}, {}}};
  const auto enc = raft::encode(m);
  return bytes(enc.bytes().begin(), enc.bytes().end());
}

bytes snapshot_file(std::uint64_t index, std::uint64_t term, const bytes& data) {
  const bytes meta = snapshot_meta_bytes(index, term);
  // Header, metadata, data, trailer. Sized first and filled in place: GCC 12 at -O3 gives a
  // false -Warray-bounds on vector::insert after a 32-byte vector here.
  bytes b(32 + meta.size() + data.size() + 12);
  std::copy(meta.begin(), meta.end(), b.begin() + 32);
  std::copy(data.begin(), data.end(), b.begin() + 32 + std::ptrdiff_t(meta.size()));
  fix_snapshot_header(b, std::uint32_t(meta.size()));
  fix_snapshot_trailer(b, meta.size());
  return b;
}

// ---- what load() returned, for comparisons ----------------------------------------------------

using fuzz::entry;

struct loaded {
  std::uint64_t term = 0, vote = 0, base_index = 0, base_term = 0;
  std::vector<entry> entries;
  // The current snapshot (index 0: none): its metadata's index and term, and its bytes.
  std::uint64_t snap_index = 0, snap_term = 0;
  bytes snap_data;
  friend bool operator==(const loaded&, const loaded&) = default;
};

loaded summarize(const raft::persistent_state& ps, const raft::file_storage& s) {
  loaded l{ps.state.term.value, ps.state.voted_for.value, ps.base_index.value, ps.base_term.value, {}, 0, 0, {}};
  for (const auto& e : ps.entries) {
    const auto p = e.data.bytes();
    l.entries.push_back({e.term.value, e.index.value, static_cast<std::uint8_t>(e.kind), bytes(p.begin(), p.end())});
  }
  if (auto r = s.open_snapshot()) {
    l.snap_index = r->meta().index.value;
    l.snap_term = r->meta().term.value;
    // Read it all back, in odd-sized pieces: what load() accepted must be readable.
    l.snap_data.resize(std::size_t(r->size()));
    std::size_t at = 0;
    while (at < l.snap_data.size()) {
      const std::size_t want = std::min<std::size_t>(37, l.snap_data.size() - at);
      const std::size_t got = r->read_at(at, std::span<std::byte>(l.snap_data.data() + at, want));
      FUZZ_CHECK(got == want, "a loaded snapshot reads short at offset " + std::to_string(at));
      at += got;
    }
    std::byte extra[1];
    FUZZ_CHECK(r->read_at(r->size(), extra) == 0, "a snapshot reads past its end");
  }
  return l;
}

std::string describe(const loaded& l) {
  std::string s = "term " + std::to_string(l.term) + " vote " + std::to_string(l.vote) + " base " +
                  std::to_string(l.base_index) + "/" + std::to_string(l.base_term) + " snapshot " +
                  std::to_string(l.snap_index) + "/" + std::to_string(l.snap_term) + "+" +
                  std::to_string(l.snap_data.size()) + " entries [";
  for (const auto& e : l.entries)
    s += " " + std::to_string(e.index) + "@" + std::to_string(e.term) + "k" + std::to_string(e.kind) + "+" +
         std::to_string(e.payload.size());
  return s + " ]";
}

raft::file_storage_options storage_options(std::size_t segment_bytes) {
  raft::file_storage_options o;
  o.fsync = false;  // the page cache is the disk here; the order of writes is the same
  o.segment_bytes = segment_bytes;
  return o;
}

/// load(): the state, or nullopt for file_storage_corruption. Any other outcome is a failure.
std::optional<loaded> try_load(const fs::path& dir, std::size_t segment_bytes, std::string* why = nullptr) {
  try {
    raft::file_storage s(dir, storage_options(segment_bytes));
    const auto ps = s.load();
    return summarize(ps, s);
  } catch (const raft::file_storage_corruption& e) {
    if (why) *why = e.what();
    FUZZ_CHECK(std::string(e.what()).find(e.file().filename().string()) != std::string::npos,
               "a corruption error that does not name its file: " + std::string(e.what()));
    return std::nullopt;
  } catch (const std::exception& e) {
    fuzz::fail(std::string("load() threw something other than file_storage_corruption: ") + e.what());
  }
}

/// What every successful load promises.
void check_well_formed(const loaded& l) {
  std::uint64_t next = l.base_index + 1;
  for (const auto& e : l.entries) {
    FUZZ_CHECK(e.index == next, "entries are not contiguous from the base: " + describe(l));
    FUZZ_CHECK(e.kind <= 2, "an entry of an unknown kind: " + describe(l));
    ++next;
  }
}

/// After a successful load: reload (stable), then use the storage and reload again.
void check_usable(const fs::path& dir, const loaded& first, fuzz::input& in) {
  const std::size_t segment_bytes = 64 + in.below(2048);
  std::string why;
  const auto again = try_load(dir, segment_bytes, &why);
  FUZZ_CHECK(again.has_value(), "a directory that loaded once is refused the second time: " + why);
  FUZZ_CHECK(*again == first, "a second load differs: " + describe(first) + " then " + describe(*again));

  // Far-out indices (a fuzzed base or segment name) would overflow the model below.
  const std::uint64_t last = first.entries.empty() ? first.base_index : first.entries.back().index;
  if (last > (std::uint64_t{1} << 60)) return;

  loaded model = first;
  {
    raft::file_storage s(dir, storage_options(segment_bytes));
    (void)s.load();
    asio::io_context io;
    const int ops = 1 + int(in.below(6));
    for (int k = 0; k < ops; ++k) {
      const std::uint64_t model_last = model.entries.empty() ? model.base_index : model.entries.back().index;
      const std::uint64_t model_term = std::max<std::uint64_t>(
          {1, model.term, model.base_term, model.entries.empty() ? 0 : model.entries.back().term});
      switch (in.below(6)) {
        case 0:
        case 1: {  // append 1..4 entries
          std::vector<raft::log_entry> es;
          const int n = 1 + int(in.below(4));
          for (int j = 0; j < n; ++j) {
            const std::uint64_t index = model_last + 1 + std::uint64_t(j);
            bytes payload(in.below(300), std::byte(index & 0xFF));
            es.push_back({raft::term_t{model_term}, raft::index_t{index}, raft::entry_kind::command,
                          raft::buffer{payload}});
            model.entries.push_back({model_term, index, 0, payload});
          }
          s.append(es);
          break;
        }
        case 2: {  // truncate after an index at or above the base
          const std::uint64_t at = model.base_index + in.below(std::size_t(model_last - model.base_index + 2));
          s.truncate_after(raft::index_t{at});
          std::erase_if(model.entries, [&](const entry& e) { return e.index > at; });
          break;
        }
        case 3: {  // compact through an index (past the end: the log is emptied)
          std::uint64_t at = model.base_index + in.below(std::size_t(model_last - model.base_index + 3));
          // load() refuses a base above the newest snapshot: the node compacts only up to one.
          if (model.snap_index != 0) at = std::min(at, model.snap_index);
          const std::uint64_t t = model_term;
          s.compact_through(raft::index_t{at}, raft::term_t{t});
          if (at > model.base_index) {
            model.base_index = at;
            model.base_term = t;
            std::erase_if(model.entries, [&](const entry& e) { return e.index <= at; });
          }
          break;
        }
        case 5: {  // a snapshot, at or past the current one, written and committed
          const std::uint64_t from = std::max<std::uint64_t>({1, model.snap_index, model.base_index});
          const std::uint64_t span = from <= model_last + 1 ? model_last + 1 - from : 0;  // up to one past the end
          const std::uint64_t at = from + in.below(std::size_t(std::min<std::uint64_t>(span, 200)) + 1);
          const raft::snapshot_meta meta{raft::index_t{at}, raft::term_t{model_term},
                                         raft::configuration{{raft::node_id{1}, raft::node_id{2}}, {}, {}}};
          bytes data(in.below(3000));
          for (std::size_t j = 0; j < data.size(); ++j) data[j] = std::byte((at + j * 5) & 0xFF);
          auto w = s.create_snapshot(meta);
          for (std::size_t off = 0; off < data.size(); off += 700)
            w.write(std::span<const std::byte>(data).subspan(off, std::min<std::size_t>(700, data.size() - off)));
          std::exception_ptr error;
          bool done = false;
          asio::co_spawn(io, w.commit(), [&](std::exception_ptr e) { error = e, done = true; });
          io.restart();
          io.run();
          FUZZ_CHECK(done && !error, "a snapshot commit failed after a successful load");
          model.snap_index = at;
          model.snap_term = model_term;
          model.snap_data = std::move(data);
          break;
        }
        case 4: {  // a new term and vote (durable at once)
          model.term = std::max(model.term, model_term) + in.below(2);
          model.vote = in.below(4);
          s.save_hard_state({raft::term_t{model.term}, raft::node_id{model.vote}});
          break;
        }
      }
      if (in.flag()) {
        std::exception_ptr error;
        bool done = false;
        asio::co_spawn(io, s.flush(), [&](std::exception_ptr e) { error = e, done = true; });
        io.restart();
        io.run();
        FUZZ_CHECK(done, "flush did not complete");
        if (error) {
          try {
            std::rethrow_exception(error);
          } catch (const std::exception& e) {
            fuzz::fail(std::string("flush failed after a successful load: ") + e.what());
          }
        }
      }  // else: carried into the next flush (the final one below makes everything durable)
    }
    bool done = false;
    std::exception_ptr error;
    asio::co_spawn(io, s.flush(), [&](std::exception_ptr e) { error = e, done = true; });
    io.restart();
    io.run();
    FUZZ_CHECK(done && !error, "the final flush failed");
  }
  const auto after = try_load(dir, segment_bytes, &why);
  FUZZ_CHECK(after.has_value(), "the directory is refused after appends/truncations/compactions: " + why);
  FUZZ_CHECK(*after == model, "after appends/truncations/compactions: expected " + describe(model) + ", loaded " +
                                  describe(*after));
}

// ---- raw inputs ----------------------------------------------------------------------------------

void run_raw(fuzz::input& in) {
  const fs::path dir = fuzz::fresh_dir();
  const int files = int(in.below(9));
  for (int k = 0; k < files; ++k) {
    const auto kind = in.below(7);
    const std::uint8_t fix = in.u8();
    std::uint64_t first = 0;
    std::string name;
    switch (kind) {
      case 0: name = "hard_state"; break;
      case 1: name = "base"; break;
      case 2:
        first = (fix & 0x80) ? in.u64() : in.below(40);
        name = segment_name(first);
        break;
      case 3: {
        const auto which = in.below(3);
        name = which == 0 ? "hard_state.tmp" : which == 1 ? segment_name(in.below(40)) + ".tmp"
                                                          : snapshot_name(in.below(40)) + ".tmp";
        break;
      }
      case 4: name = "junk"; break;
      case 5: name = in.flag() ? "log-0000000000000000001x.seg" : "snapshot-1.snap"; break;
      default:
        first = (fix & 0x80) ? in.u64() : in.below(40);
        name = snapshot_name(first);
        break;
    }
    const auto raw = in.block();
    bytes b(raw.begin(), raw.end());
    if (kind == 0 || kind == 1) {
      if (fix & 1) b.resize(small_file);
      if ((fix & 2) && b.size() == small_file) fix_small_file(b, kind == 0 ? "RAFTHARD" : "RAFTBASE");
    } else if (kind == 2) {
      if ((fix & 1) && b.size() >= segment_header) fix_segment_header(b, first);
      if (fix & 2) {
        // Walk the records by their length fields; optionally give each the expected index;
        // fix their checksums, so the fuzzer reaches the checks behind them.
        std::size_t at = segment_header;
        std::uint64_t index = first;
        while (at + 25 <= b.size()) {
          const std::uint32_t len = get32(b, at);
          if (len < 17 || len > b.size() - at - 8) break;
          if (fix & 4) put64(b, at + 16, index);
          if (fix & 8) b[at + 24] = std::byte(std::uint8_t(b[at + 24]) % 3);
          fix_record_crc(b, at);
          at += 8 + len;
          ++index;
        }
      }
    } else if (kind == 6 && b.size() >= 44) {
      // Optionally: valid metadata naming the file's index, the header, the trailer.
      std::uint32_t meta_len = get32(b, 12) % std::uint32_t(b.size() - 44 + 1);
      if (fix & 4) {
        const bytes meta = snapshot_meta_bytes(first == 0 ? 1 : first, 1 + (fix >> 4));
        if (b.size() >= 44 + meta.size()) {
          std::copy(meta.begin(), meta.end(), b.begin() + 32);
          meta_len = std::uint32_t(meta.size());
        }
      }
      if (fix & 1) fix_snapshot_header(b, meta_len);
      if (fix & 2) fix_snapshot_trailer(b, meta_len);
    }
    fuzz::write_file(dir / name, b);
  }
  const std::size_t segment_bytes = 64 + in.below(2048);
  const auto l = try_load(dir, segment_bytes);
  if (!l) return;
  check_well_formed(*l);
  for (const auto& e : fs::directory_iterator(dir))
    FUZZ_CHECK(e.path().extension() != ".tmp", "load() left a .tmp file: " + e.path().string());
  check_usable(dir, *l, in);
}

// ---- structured inputs, with a model of the recovery rules ------------------------------------

struct model_segment {
  std::uint64_t first = 0;
  std::vector<entry> records;
  bytes file;
  std::vector<std::size_t> offsets;  // of each record in `file`
  // Damage:
  bool header_bad = false;      // recovery must refuse it
  std::optional<std::size_t> bad_record;  // first record made unreadable (flip, cut, zeros)
  std::size_t readable = 0;     // records before the damage
};

enum class damage {
  none, cut_tail, flip, zero_tail, remove_segment, leftovers, hard_state, base,
  snapshot_flip, snapshot_cut, snapshot_old, snapshot_below_base, count
};

void run_structured(fuzz::input& in) {
  const fs::path dir = fuzz::fresh_dir();

  // The log: records first..first+n-1, terms non-decreasing.
  const std::uint64_t first = in.flag() ? 1 : 1 + in.below(6);
  const std::size_t n = in.below(33);
  std::vector<entry> log;
  std::uint64_t term = 1 + in.below(3);
  for (std::size_t k = 0; k < n; ++k) {
    const std::uint8_t shape = in.u8();
    if (shape & 1) term += 1 + (shape >> 6);
    const std::uint64_t index = first + k;
    bytes payload((shape >> 1) % 40);
    for (std::size_t j = 0; j < payload.size(); ++j) payload[j] = std::byte((index * 131 + j * 7) & 0xFF);
    log.push_back({term, index, std::uint8_t((shape >> 3) % 3), std::move(payload)});
  }

  // Split into segments: each non-empty, plus possibly an empty last one (a crash right after
  // a new segment was created).
  std::vector<model_segment> segs;
  for (std::size_t k = 0; k < n;) {
    const std::size_t take = std::min<std::size_t>(n - k, 1 + in.below(12));
    model_segment s;
    s.first = first + k;
    s.records.assign(log.begin() + std::ptrdiff_t(k), log.begin() + std::ptrdiff_t(k + take));
    segs.push_back(std::move(s));
    k += take;
  }
  if (segs.empty() || in.below(4) == 0) {
    model_segment s;
    s.first = first + n;
    segs.push_back(std::move(s));
  }
  for (auto& s : segs) {
    s.file = segment_header_bytes(s.first);
    for (const auto& r : s.records) {
      s.offsets.push_back(s.file.size());
      append_record(s.file, r.term, r.index, r.kind, r.payload);
    }
    s.readable = s.records.size();
  }

  // Hard state and compaction base, each present or not.
  const std::uint64_t last_term = log.empty() ? 0 : log.back().term;
  const bool have_hs = in.below(4) != 0;
  const std::uint64_t hs_term = last_term + in.below(3), hs_vote = in.below(4);
  const bool have_base = in.below(3) == 0;
  std::uint64_t base = 0, base_term = 0;
  if (have_base) {
    base = first - 1 + in.below(n + 3);
    base_term = base >= first && base < first + n ? log[base - first].term : in.below(3);
  }
  // A snapshot, at or past the base (the node compacts only up to a committed snapshot).
  bool have_snap = in.below(have_base ? 2 : 4) == 0;
  std::uint64_t snap_index = 0, snap_term = 0;
  bytes snap_data;
  auto make_snapshot = [&](std::uint64_t index) {
    have_snap = true;
    snap_index = index;
    snap_term = index >= first && index < first + n ? log[index - first].term : 1 + in.below(3);
    snap_data.assign(in.below(300), std::byte{0});
    for (std::size_t j = 0; j < snap_data.size(); ++j) snap_data[j] = std::byte((index * 17 + j * 3) & 0xFF);
  };
  if (have_snap) make_snapshot(std::max<std::uint64_t>(base, 1) + in.below(3));
  bytes hs_file = small_file_bytes("RAFTHARD", hs_term, hs_vote);
  bytes base_file = small_file_bytes("RAFTBASE", base, base_term);
  bool hs_bad = false, base_bad = false, snap_bad = false;
  bytes snap_file = have_snap ? snapshot_file(snap_index, snap_term, snap_data) : bytes{};
  std::optional<std::string> old_snapshot;  // an older snapshot file load() must delete unread

  // One kind of damage.
  const auto what = static_cast<damage>(in.below(std::size_t(damage::count)));
  std::vector<std::pair<std::string, bytes>> extra_files;
  switch (what) {
    case damage::none: break;
    case damage::cut_tail: {  // the last segment ends early: a torn write
      auto& s = segs.back();
      const std::size_t at = in.below(s.file.size() + 1);
      s.file.resize(at);
      if (at < segment_header) s.header_bad = true;
      s.readable = 0;
      while (s.readable < s.records.size() &&
             s.offsets[s.readable] + 25 + s.records[s.readable].payload.size() <= at)
        ++s.readable;
      if (s.readable < s.records.size() && s.offsets[s.readable] < at) s.bad_record = s.readable;
      // Records past the cut are gone: nothing valid follows the torn one.
      s.records.resize(std::min(s.records.size(), s.readable + 1));
      s.offsets.resize(s.records.size());
      break;
    }
    case damage::flip: {  // one byte of one segment flipped (a bad sector, a stray write)
      auto& s = segs[in.below(segs.size())];
      const std::size_t at = in.below(s.file.size());
      const std::uint8_t x = std::uint8_t(1u << in.below(8));
      s.file[at] ^= std::byte{x};
      if (at < 28) {
        s.header_bad = true;  // magic, version, header size, first index, header CRC
      } else if (at >= segment_header) {
        const auto r = std::size_t(std::upper_bound(s.offsets.begin(), s.offsets.end(), at) - s.offsets.begin()) - 1;
        s.bad_record = r;
        s.readable = r;
      }  // bytes 28..31 are reserved and not checked: no effect
      break;
    }
    case damage::zero_tail: {  // the file grew but the data never made it (delayed allocation)
      segs.back().file.resize(segs.back().file.size() + 1 + in.below(64));
      break;
    }
    case damage::remove_segment: {
      segs.erase(segs.begin() + std::ptrdiff_t(in.below(segs.size())));
      break;
    }
    case damage::leftovers: {  // an interrupted atomic replace or segment creation
      const auto junk = in.block();
      extra_files.emplace_back("hard_state.tmp", bytes(junk.begin(), junk.end()));
      extra_files.emplace_back(segment_name(first + n) + ".tmp", bytes(junk.begin(), junk.end()));
      extra_files.emplace_back("notes.txt", bytes(junk.begin(), junk.end()));
      extra_files.emplace_back(snapshot_name(first + n) + ".tmp", bytes(junk.begin(), junk.end()));
      break;
    }
    case damage::snapshot_flip:
    case damage::snapshot_cut: {  // a committed snapshot was synced before it was named: refused
      if (!have_snap) {
        make_snapshot(std::max<std::uint64_t>(base, 1));
        snap_file = snapshot_file(snap_index, snap_term, snap_data);
      }
      if (what == damage::snapshot_flip)
        snap_file[in.below(snap_file.size())] ^= std::byte(1u << in.below(8));
      else
        snap_file.resize(in.below(snap_file.size()));
      snap_bad = true;
      break;
    }
    case damage::snapshot_old: {  // a crash between a commit's rename and its cleanup
      if (!have_snap) {
        make_snapshot(std::max<std::uint64_t>(base, 1) + 1);
        snap_file = snapshot_file(snap_index, snap_term, snap_data);
      }
      const auto junk = in.block();  // its contents do not matter: it is never read
      if (snap_index >= 2) {
        old_snapshot = snapshot_name(snap_index - 1 - in.below(std::size_t(std::min<std::uint64_t>(snap_index - 1, 200))));
        extra_files.emplace_back(*old_snapshot, bytes(junk.begin(), junk.end()));
      }
      break;
    }
    case damage::snapshot_below_base: {  // entries between the snapshot and the base are lost
      if (base >= 2) {
        make_snapshot(base - 1 - in.below(std::size_t(std::min<std::uint64_t>(base - 2, 100)) + 1));
        snap_file = snapshot_file(snap_index, snap_term, snap_data);
        snap_bad = true;
      }
      break;
    }
    case damage::hard_state:
    case damage::base: {
      bytes& f = what == damage::hard_state ? hs_file : base_file;
      bool& bad = what == damage::hard_state ? hs_bad : base_bad;
      if (in.flag()) {
        const std::size_t at = in.below(small_file);
        f[at] ^= std::byte(1u << in.below(8));
        bad = at < 36;  // bytes 36..39 are reserved and outside the checksum
      } else {
        f.resize(in.below(small_file * 2));
        bad = f.size() != small_file;
        if (!bad) f = small_file_bytes(what == damage::hard_state ? "RAFTHARD" : "RAFTBASE",
                                       what == damage::hard_state ? hs_term : base,
                                       what == damage::hard_state ? hs_vote : base_term);
      }
      break;
    }
    case damage::count: break;
  }
  const bool hs_written = have_hs || what == damage::hard_state;
  const bool base_written = have_base || what == damage::base;

  for (const auto& s : segs) fuzz::write_file(dir / segment_name(s.first), s.file);
  if (hs_written) fuzz::write_file(dir / "hard_state", hs_file);
  if (base_written) fuzz::write_file(dir / "base", base_file);
  if (have_snap) fuzz::write_file(dir / snapshot_name(snap_index), snap_file);
  for (const auto& [name, b] : extra_files) fuzz::write_file(dir / name, b);

  // The model of load() (docs/storage.md, "Recovery").
  std::optional<loaded> expected;
  const bool refused = [&] {
    if ((hs_written && hs_bad) || (base_written && base_bad) || (have_snap && snap_bad)) return true;
    loaded l;
    if (have_snap) l.snap_index = snap_index, l.snap_term = snap_term, l.snap_data = snap_data;
    if (hs_written) l.term = hs_term, l.vote = hs_vote;
    if (base_written) l.base_index = base, l.base_term = base_term;
    const std::uint64_t b = base_written ? base : 0;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> kept;  // first, next
    for (std::size_t k = 0; k < segs.size(); ++k) {
      const auto& s = segs[k];
      const bool last_file = k + 1 == segs.size();
      if (!last_file && segs[k + 1].first <= b + 1) continue;  // compacted away, not even read
      if (s.header_bad) return true;
      if (!kept.empty() && kept.back().second != s.first) return true;  // a gap
      if (kept.empty() && s.first > b + 1) return true;                  // a gap after the base
      if (s.bad_record) {
        if (!last_file) return true;                           // damage before the last segment
        if (*s.bad_record + 1 < s.records.size()) return true;  // valid records follow it
      }
      for (std::size_t r = 0; r < s.readable; ++r)
        if (s.records[r].index > b) l.entries.push_back(s.records[r]);
      kept.emplace_back(s.first, s.first + s.readable);
    }
    if (!l.entries.empty() && l.entries.front().index != b + 1) return true;
    expected = std::move(l);
    return false;
  }();

  std::string why;
  const auto got = try_load(dir, 64 + in.below(2048), &why);
  const std::string damage_name[] = {"none",     "cut_tail",      "flip",         "zero_tail",
                                     "remove_segment", "leftovers", "hard_state", "base",
                                     "snapshot_flip", "snapshot_cut", "snapshot_old", "snapshot_below_base"};
  const std::string context = " (damage: " + damage_name[std::size_t(what)] + ", " + std::to_string(segs.size()) +
                              " segments, " + std::to_string(n) + " records from " + std::to_string(first) +
                              ", base " + std::to_string(base_written ? base : 0) + ")";
  if (std::getenv("FUZZ_TRACE"))
    std::fprintf(stderr, "structured%s: %s\n", context.c_str(),
                 got ? ("loaded " + describe(*got)).c_str() : ("refused: " + why).c_str());
  if (refused) {
    FUZZ_CHECK(!got, "load() accepted a directory it must refuse" + context + ": loaded " + describe(*got));
    return;
  }
  FUZZ_CHECK(got.has_value(), "load() refused a directory it must accept" + context + ": " + why);
  FUZZ_CHECK(*got == *expected, "load() returned the wrong log" + context + ": expected " + describe(*expected) +
                                    ", loaded " + describe(*got));
  check_well_formed(*got);
  for (const auto& e : fs::directory_iterator(dir))
    FUZZ_CHECK(e.path().extension() != ".tmp", "load() left a .tmp file: " + e.path().string());
  if (old_snapshot) FUZZ_CHECK(!fs::exists(dir / *old_snapshot), "load() kept an older snapshot: " + *old_snapshot);
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
