// tests/fuzz/make_corpus.cpp - writes the seed corpus of the fuzz harnesses:
//
//   fuzz_make_corpus OUT_DIR        (scripts/fuzz.sh --regen-corpus writes tests/fuzz/corpus/)
//
// OUT_DIR/<harness>/<name> for each harness:
//   codec         every message type the codec knows, default-constructed (so a type added to
//                 raft::message_body gets a seed without editing this file), richer messages of
//                 each type, frames, a handshake;
//   file_storage  directories written by a real file_storage (appends over several segments,
//                 a truncation, a compaction), in the harness's raw input format; plus inputs in
//                 its structured format, one per kind of damage;
//   shared_log    directories written by a real shared_log (several groups over several segments,
//                 truncations, compactions, a removal), in the harness's raw input format; plus
//                 inputs in its structured format, a few per kind of damage;
//   node          programs that get the node elected (alone, or with the fuzzer's votes), make
//                 it commit and apply proposals, crash and restart it, feed it every message type;
//   cluster       programs with crashes, partitions, replays, pauses and clock skew.
// The program formats are those the harnesses read (see their step_once()); any bytes are a
// valid program, these are only good starting points. Deterministic: same output every run.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "raft/raft.hpp"
#include "raft/storage/file.hpp"
#include "raft/storage/shared_log.hpp"
#include "raft/transport/codec.hpp"

namespace {

namespace fs = std::filesystem;
using bytes = std::vector<std::uint8_t>;

fs::path out_dir;

void write(const std::string& harness, const std::string& name, const bytes& b) {
  const fs::path dir = out_dir / harness;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

bytes to_bytes(const std::vector<std::byte>& v) {
  bytes b;
  for (auto x : v) b.push_back(std::uint8_t(x));
  return b;
}

// ---- codec ---------------------------------------------------------------------------------------

template <std::size_t... I>
void every_default_type(std::index_sequence<I...>) {
  (
      [] {
        raft::message m{raft::node_id{1}, raft::node_id{2}, raft::message_body::alternative<I>{}};
        std::vector<std::byte> body;
        raft::codec::encode_body(m, body);
        write("codec", "type" + std::to_string(I) + "-default", to_bytes(body));
      }(),
      ...);
}

void codec_seeds() {
  every_default_type(std::make_index_sequence<raft::message_body::size>{});
  using namespace raft;
  const std::vector<std::pair<std::string, message>> rich = {
      {"vote-request", {node_id{0x102}, node_id{3}, vote_request{term_t{7}, index_t{5}, term_t{4}, false}}},
      {"pre-vote", {node_id{2}, node_id{1}, vote_request{term_t{8}, index_t{9}, term_t{7}, true}}},
      {"vote-granted", {node_id{3}, node_id{1}, vote_response{term_t{7}, true, false}}},
      {"pre-vote-refused", {node_id{3}, node_id{1}, vote_response{term_t{7}, false, true}}},
      {"append-3", {node_id{1}, node_id{2},
                    append_request{term_t{3}, index_t{4}, term_t{2}, index_t{4},
                                   {log_entry{term_t{3}, index_t{5}, entry_kind::noop, {}},
                                    log_entry{term_t{3}, index_t{6}, entry_kind::command, buffer::from_string("put k v")},
                                    log_entry{term_t{3}, index_t{7}, entry_kind::configuration,
                                              encode(configuration{{node_id{1}, node_id{2}, node_id{3}}, {}, {}})}}}}},
      {"heartbeat", {node_id{1}, node_id{3}, append_request{term_t{3}, index_t{7}, term_t{3}, index_t{7}, {}}}},
      {"append-ok", {node_id{2}, node_id{1}, append_response{term_t{3}, true, index_t{7}, index_t{0}, index_t{0}, term_t{0}}}},
      {"append-rejected",
       {node_id{2}, node_id{1}, append_response{term_t{3}, false, index_t{0}, index_t{7}, index_t{5}, term_t{2}}}},
  };
  for (const auto& [name, m] : rich) {
    std::vector<std::byte> body, frame;
    codec::encode_body(m, body);
    codec::encode_frame(m, frame);
    write("codec", name, to_bytes(body));
    write("codec", name + "-frame", to_bytes(frame));
  }
  std::byte hello[codec::hello_bytes];
  codec::encode_hello({0x4B56, node_id{2}}, hello);
  write("codec", "hello", bytes(reinterpret_cast<std::uint8_t*>(hello), reinterpret_cast<std::uint8_t*>(hello) + 24));
}

// ---- file_storage -----------------------------------------------------------------------------------

/// The harness's raw format: mode byte (even), file count, then per file: kind, fix flags,
/// [segment: first index byte], u16 length, bytes. Then the options of the checks that follow.
bytes raw_input_from(const fs::path& dir) {
  bytes in{0};
  std::vector<std::pair<int, bytes>> files;  // kind, content
  std::vector<std::uint64_t> firsts;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    std::ifstream f(e.path(), std::ios::binary);
    bytes content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (content.size() > 60000) content.resize(60000);
    if (name == "hard_state") files.push_back({0, content}), firsts.push_back(0);
    else if (name == "base") files.push_back({1, content}), firsts.push_back(0);
    else if (name.starts_with("log-")) files.push_back({2, content}), firsts.push_back(std::stoull(name.substr(4, 20)));
  }
  in.push_back(std::uint8_t(files.size()));
  for (std::size_t k = 0; k < files.size(); ++k) {
    in.push_back(std::uint8_t(files[k].first));
    in.push_back(0);  // no fix-ups: the files are valid as they are
    if (files[k].first == 2) in.push_back(std::uint8_t(firsts[k]));  // first index (below 40)
    const auto& c = files[k].second;
    in.push_back(std::uint8_t(c.size() & 0xFF));
    in.push_back(std::uint8_t(c.size() >> 8));
    in.insert(in.end(), c.begin(), c.end());
  }
  for (std::uint8_t b : {0x40, 0x00, 0x40, 0x00, 0x05, 0x00, 0x03, 0x01, 0x02, 0x01, 0x03, 0x05, 0x01})
    in.push_back(b);  // segment size, then a few appends/truncations/compactions and flushes
  return in;
}

void flush(raft::file_storage& s) {
  asio::io_context io;
  asio::co_spawn(io, s.flush(), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}

void file_storage_seeds() {
  const fs::path tmp = fs::temp_directory_path() / ("raft-make-corpus-" + std::to_string(::getpid()));
  auto make = [&](const std::string& name, auto&& fill) {
    fs::remove_all(tmp);
    {
      raft::file_storage_options o;
      o.fsync = false;
      o.segment_bytes = 200;  // a few records per segment: several segments
      raft::file_storage s(tmp, o);
      (void)s.load();
      fill(s);
    }
    fs::remove(tmp / "LOCK");
    write("file_storage", name, raw_input_from(tmp));
  };
  auto entries = [](std::uint64_t from, std::uint64_t to, std::uint64_t term) {
    std::vector<raft::log_entry> es;
    for (std::uint64_t i = from; i <= to; ++i)
      es.push_back({raft::term_t{term}, raft::index_t{i}, raft::entry_kind(i % 3),
                    raft::buffer::from_string(std::string(i % 17, char('a' + i % 26)))});
    return es;
  };
  make("raw-empty", [](raft::file_storage&) {});
  make("raw-hard-state", [](raft::file_storage& s) { s.save_hard_state({raft::term_t{3}, raft::node_id{2}}); });
  make("raw-segments", [&](raft::file_storage& s) {
    s.save_hard_state({raft::term_t{2}, raft::node_id{1}});
    s.append(entries(1, 12, 1));
    flush(s);
    s.append(entries(13, 20, 2));
    flush(s);
  });
  make("raw-truncated", [&](raft::file_storage& s) {
    s.append(entries(1, 10, 1));
    flush(s);
    s.truncate_after(raft::index_t{6});
    s.append(entries(7, 9, 2));
    flush(s);
  });
  make("raw-compacted", [&](raft::file_storage& s) {
    s.append(entries(1, 15, 1));
    flush(s);
    s.compact_through(raft::index_t{8}, raft::term_t{1});
    flush(s);
  });
  fs::remove_all(tmp);

  // Structured inputs (mode byte odd): the same program prefix, each kind of damage.
  std::mt19937_64 rng(7);
  for (int damage = 0; damage < 12; ++damage) {
    bytes in{1, 1, 20, 0};                                    // structured, first index 1, 20 records
    for (int r = 0; r < 20; ++r) in.push_back(std::uint8_t(rng()));  // record shapes
    for (int s = 0; s < 4; ++s) in.push_back(5);              // segments of 6 records
    in.insert(in.end(), {1, 1, 1, 2, 0, 5, 0, 1, 60, 0});    // no empty tail; hard state; base 5;
                                                              // a snapshot at 6 of 60 bytes
    in.push_back(std::uint8_t(damage));
    for (int k = 0; k < 12; ++k) in.push_back(std::uint8_t(rng()));  // damage details, checks
    write("file_storage", "structured-damage" + std::to_string(damage), in);
  }
}

// ---- shared_log -------------------------------------------------------------------------------------

/// The harness's raw format: mode byte (even), file count, then per segment: kind 0, no fix-ups,
/// sequence number - 1 (below 8), u16 length, bytes. Then the options of the checks that follow.
bytes shared_log_raw_input_from(const fs::path& dir) {
  bytes in{0, 0};
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!name.starts_with("shared-")) continue;
    const std::uint64_t seq = std::stoull(name.substr(7, 20));
    if (seq < 1 || seq > 8) continue;  // the raw format names segments 1..8 without fix-ups
    std::ifstream f(e.path(), std::ios::binary);
    bytes content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (content.size() > 60000) content.resize(60000);
    ++in[1];
    in.insert(in.end(), {0, 0, std::uint8_t(seq - 1), std::uint8_t(content.size() & 0xFF), std::uint8_t(content.size() >> 8)});
    in.insert(in.end(), content.begin(), content.end());
  }
  for (std::uint8_t b : {0x40, 0x01, 0x00, 0x80, 0x00, 0x00, 0x40, 0x01, 0x01, 0x00, 0x01, 0x03, 0x00, 0x02, 0x01, 0x03, 0x04})
    in.push_back(b);  // segment size, zeros ahead, then the changes to one group and the flushes
  return in;
}

void flush(raft::shared_log_group& g) {
  asio::io_context io;
  asio::co_spawn(io, g.flush(), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}

void shared_log_seeds() {
  const fs::path tmp = fs::temp_directory_path() / ("raft-make-corpus-shared-" + std::to_string(::getpid()));
  auto make = [&](const std::string& name, auto&& fill) {
    fs::remove_all(tmp);
    {
      raft::shared_log_options o;
      o.fsync = false;
      o.segment_bytes = 600;  // a few records per segment: several segments
      o.prefill_bytes = 200;  // zeros after the tail's records, as in a crash
      raft::shared_log log(tmp, o);
      fill(log);
    }
    write("shared_log", name, shared_log_raw_input_from(tmp));
  };
  auto entries = [](std::uint64_t from, std::uint64_t to, std::uint64_t term) {
    std::vector<raft::log_entry> es;
    for (std::uint64_t i = from; i <= to; ++i)
      es.push_back({raft::term_t{term}, raft::index_t{i}, raft::entry_kind(i % 3),
                    raft::buffer::from_string(std::string(i % 13, char('a' + i % 26)))});
    return es;
  };
  make("raw-empty", [](raft::shared_log&) {});
  make("raw-two-groups", [&](raft::shared_log& log) {
    auto a = log.open_group(raft::group_id{1});
    auto b = log.open_group(raft::group_id{2});
    (void)a.load(), (void)b.load();
    a.stage_hard_state({raft::term_t{2}, raft::node_id{1}});
    a.append(entries(1, 6, 2));
    b.append(entries(1, 3, 1));
    flush(a), flush(b);
    b.append(entries(4, 8, 1));
    flush(b);
  });
  make("raw-truncated-compacted", [&](raft::shared_log& log) {
    auto a = log.open_group(raft::group_id{1});
    auto b = log.open_group(raft::group_id{7});
    (void)a.load(), (void)b.load();
    a.append(entries(1, 10, 1));
    b.append(entries(1, 4, 1));
    flush(a), flush(b);
    a.truncate_after(raft::index_t{6});
    a.append(entries(7, 9, 2));
    b.compact_through(raft::index_t{3}, raft::term_t{1});
    flush(a), flush(b);
    a.compact_through(raft::index_t{5}, raft::term_t{1});
    flush(a);
  });
  make("raw-removed", [&](raft::shared_log& log) {
    {
      auto a = log.open_group(raft::group_id{3});
      (void)a.load();
      a.append(entries(1, 5, 1));
      flush(a);
    }
    auto b = log.open_group(raft::group_id{4});
    (void)b.load();
    b.stage_hard_state({raft::term_t{5}, raft::node_id{2}});
    b.append(entries(1, 2, 5));
    flush(b);
    log.remove_group(raft::group_id{3});
  });
  fs::remove_all(tmp);

  // Structured inputs (mode byte odd): each kind of damage, with a few different logs.
  std::mt19937_64 rng(11);
  for (int damage = 0; damage < 11; ++damage)
    for (int variant = 0; variant < 3; ++variant) {
      bytes in{1, std::uint8_t(damage), std::uint8_t(variant)};  // structured, damage, version mode
      for (int k = 0; k < 120; ++k) in.push_back(std::uint8_t(rng()));  // the log, damage details, checks
      write("shared_log", "structured-damage" + std::to_string(damage) + "-" + std::to_string(variant), in);
    }
}

// ---- node -------------------------------------------------------------------------------------------

/// A program for fuzz_node.cpp: header (network seed, shape, node seed, in-flight limit), then ops.
struct node_program {
  bytes b;
  explicit node_program(std::uint8_t shape) {
    for (int i = 0; i < 8; ++i) b.push_back(std::uint8_t(0x11 * (i + 1)));
    b.push_back(shape);
    for (int i = 0; i < 8; ++i) b.push_back(std::uint8_t(0x21 * (i + 1)));
    b.push_back(2);
  }
  node_program& wait(int steps) { return b.insert(b.end(), {7, std::uint8_t(steps)}), *this; }  // 5 ms steps
  node_program& answer_latest(bool yes = true) { return b.insert(b.end(), {5, 0, std::uint8_t(yes ? 1 : 0)}), *this; }
  node_program& propose(std::uint8_t c) { return b.insert(b.end(), {9, 3, c, c, c, c}), *this; }
  node_program& crash() { return b.push_back(10), *this; }
  node_program& restart() { return b.push_back(11), *this; }
  node_program& message(const raft::message& m) {
    std::vector<std::byte> body;
    raft::codec::encode_body(m, body);
    b.insert(b.end(), {0, std::uint8_t(body.size() & 0xFF), std::uint8_t(body.size() >> 8)});
    for (auto x : body) b.push_back(std::uint8_t(x));
    b.push_back(1);  // keep its addresses
    return *this;
  }
};

template <std::size_t... I>
void every_type_program(std::index_sequence<I...>) {
  node_program p(0);
  (p.message(raft::message{raft::node_id{2}, raft::node_id{1}, raft::message_body::alternative<I>{}}), ...);
  p.wait(79);
  write("node", "every-type", p.b);
}

void node_seeds() {
  node_program alone(2);  // configuration {1}: elects itself
  alone.wait(79).propose(1).propose(2).wait(4).crash().wait(79).propose(3).wait(4).restart().wait(79).propose(4).wait(20);
  write("node", "alone-propose-crash-restart", alone.b);

  node_program elected(0);  // configuration {1,2,3}: the fuzzer grants the votes
  elected.wait(79).answer_latest().answer_latest().wait(1).answer_latest().answer_latest();
  for (std::uint8_t c = 1; c <= 4; ++c) elected.propose(c).wait(1).answer_latest().wait(12);
  elected.crash().wait(79).answer_latest().answer_latest();
  write("node", "elected-replicates-crashes", elected.b);

  node_program refused(1);  // five members, votes refused
  refused.wait(79).answer_latest(false).answer_latest(false).wait(79).answer_latest().wait(79);
  write("node", "refused", refused.b);

  using namespace raft;
  node_program follower(0);  // a leader (node 2) replicates to node 1, then overwrites
  follower.message({node_id{2}, node_id{1},
                    append_request{term_t{2}, index_t{1}, term_t{1}, index_t{1},
                                   {log_entry{term_t{2}, index_t{2}, entry_kind::noop, {}},
                                    log_entry{term_t{2}, index_t{3}, entry_kind::command, buffer::from_string("x")}}}});
  follower.wait(2).message({node_id{3}, node_id{1},
                            append_request{term_t{3}, index_t{2}, term_t{2}, index_t{2},
                                           {log_entry{term_t{3}, index_t{3}, entry_kind::command, buffer::from_string("y")}}}});
  follower.wait(2).message({node_id{3}, node_id{1}, vote_request{term_t{4}, index_t{3}, term_t{3}, false}}).wait(79);
  write("node", "follower-overwrite", follower.b);

  every_type_program(std::make_index_sequence<raft::message_body::size>{});

  std::mt19937_64 rng(11);
  for (int k = 0; k < 4; ++k) {
    bytes r(400);
    for (auto& x : r) x = std::uint8_t(rng());
    write("node", "random" + std::to_string(k), r);
  }
}

// ---- cluster ----------------------------------------------------------------------------------------

void cluster_seeds() {
  // shape, seed (8 bytes), then ops (see fuzz_cluster.cpp step_once()).
  auto program = [](std::uint8_t shape, std::initializer_list<std::uint8_t> ops) {
    bytes b{shape, 1, 2, 3, 4, 5, 6, 7, 8};
    b.insert(b.end(), ops);
    return b;
  };
  write("cluster", "steady", program(0, {0, 60, 3, 1, 0, 0, 3, 1, 1, 1, 0, 20, 3, 1, 2, 2, 0, 40}));
  write("cluster", "crash-leader", program(0, {0, 60, 3, 1, 0, 0, 4, 0, 0, 60, 3, 1, 1, 1, 5, 0, 0, 60}));
  write("cluster", "partition-heal", program(1, {0, 60, 6, 0, 0, 1, 1, 2, 3, 1, 0, 0, 0, 80, 8, 0, 60, 3, 1, 1, 1}));
  write("cluster", "lossy-replays", program(0, {9, 3, 2, 1, 4, 0, 60, 3, 1, 0, 0, 10, 3, 0, 1, 2, 3, 0, 60, 11, 2, 5, 6, 0, 40}));
  write("cluster", "pause-skew", program(0, {0, 60, 12, 0, 1, 0, 80, 13, 1, 5, 0, 60, 12, 0, 0, 0, 60, 3, 1, 1, 1}));
  std::mt19937_64 rng(13);
  for (int k = 0; k < 4; ++k) {
    bytes r(300);
    for (auto& x : r) x = std::uint8_t(rng());
    write("cluster", "random" + std::to_string(k), r);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  out_dir = argv[1];
  codec_seeds();
  file_storage_seeds();
  shared_log_seeds();
  node_seeds();
  cluster_seeds();
  std::printf("seed corpus written to %s\n", out_dir.c_str());
  return 0;
}
