// raft_sim - runs the randomized nemesis simulation (tests/sim/sim.hpp) over many seeds.
//
//   raft_sim --seeds N [--first S]     seeds S .. S+N-1 (default 1 .. 100)
//   raft_sim --seed S [--trace]        one seed; --trace prints its trace; --dump-history FILE
//                                      writes its client history in lincheck's format
//   raft_sim --soak SECONDS [--first S]  consecutive seeds until the time is up
//   raft_sim --rotate --seeds N        a block whose first seed comes from $RAFT_SIM_ROTATE
//                                      (CI sets it from the commit); exit 77 (skip) if unset
//   raft_sim --expect-violation ...    for mutants: succeed at the first broken promise
//                                      (safety, linearizability, convergence, a failed node, a
//                                      misreported outcome, compaction), fail if there is none;
//                                      --expect-failure: liveness failures count too
//   raft_sim --coverage                print what the seeds exercised (operation x context)
//   raft_sim --require-coverage        ... and fail if a cell the design reaches stayed at zero
// Other flags: --verbose (heartbeats in traces), --quiet, --max-reports K (default 3),
// --profile mixed|churn|snapshots (every seed uses that nemesis profile; a seed's run then differs from
// the one it has without the flag, so pass the flag again to replay it).
//
// A failure prints the seed, the problem, the fault schedule and the trace of a replay of the
// same seed (which must reproduce it: same trace hash). Exit 0 if every seed passed, 1 if not,
// 2 on bad arguments.
#include <chrono>
#include <cstdint>
#include <ctime>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <string>

#include "sim.hpp"

namespace {

[[noreturn]] void usage(const char* why) {
  std::cerr << "raft_sim: " << why
            << "\nusage: raft_sim [--seeds N] [--first S] [--seed S] [--soak SECONDS] [--rotate]\n"
               "                [--expect-violation | --expect-failure] [--coverage] [--require-coverage]\n"
               "                [--trace] [--verbose] [--dump-history FILE]\n"
               "                [--quiet] [--max-reports K] [--profile mixed|churn|snapshots]\n";
  std::exit(2);
}

std::uint64_t number(const char* flag, const char* text) {
  char* end = nullptr;
  const auto v = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0' || text[0] == '-') usage((std::string(flag) + " wants a number").c_str());
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t first = 1, count = 100;
  bool first_given = false, single = false, rotate = false, expect = false, trace = false;
  bool verbose = false, quiet = false, any_failure = false, coverage = false, require_coverage = false;
  double soak = 0;
  std::size_t max_reports = 3;
  std::string dump, profile;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage((a + " wants a value").c_str());
      return argv[++i];
    };
    if (a == "--seeds") {
      count = number("--seeds", value());
    } else if (a == "--first") {
      first = number("--first", value());
      first_given = true;
    } else if (a == "--seed") {
      first = number("--seed", value());
      count = 1;
      single = first_given = true;
    } else if (a == "--soak") {
      soak = double(number("--soak", value()));
    } else if (a == "--rotate") {
      rotate = true;
    } else if (a == "--expect-violation") {
      expect = true;
    } else if (a == "--expect-failure") {
      expect = any_failure = true;
    } else if (a == "--coverage") {
      coverage = true;
    } else if (a == "--require-coverage") {
      coverage = require_coverage = true;
    } else if (a == "--trace") {
      trace = true;
    } else if (a == "--verbose") {
      verbose = true;
    } else if (a == "--quiet") {
      quiet = true;
    } else if (a == "--dump-history") {
      dump = value();
    } else if (a == "--profile") {
      profile = value();
      if (profile != "mixed" && profile != "churn" && profile != "snapshots")
        usage("--profile is mixed, churn or snapshots");
    } else if (a == "--max-reports") {
      max_reports = number("--max-reports", value());
    } else if (a == "--help" || a == "-h") {
      usage("help");
    } else {
      usage(("unknown argument " + a).c_str());
    }
  }
  if (rotate) {
    const char* env = std::getenv("RAFT_SIM_ROTATE");
    if (env == nullptr || *env == '\0') {
      std::cout << "raft_sim: RAFT_SIM_ROTATE is not set; the rotating block is skipped\n";
      return 77;
    }
    sim::trace_hash h;
    h.add(std::string_view(env));
    first = 1'000'000 + h.h % 1'000'000'000'000ull;  // far from the fixed block
    std::cout << "raft_sim: rotating block from RAFT_SIM_ROTATE=" << env << "\n";
  }
  if (soak > 0 && !first_given && !rotate) {
    first = 1'000'000'000'000ull +
            std::uint64_t(std::chrono::system_clock::now().time_since_epoch().count()) % 1'000'000'000'000ull;
  }
  const char* program = argv[0];

  const auto wall_start = std::chrono::steady_clock::now();
  const std::clock_t cpu_start = std::clock();
  auto wall = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count(); };
  std::uint64_t ran = 0, failed = 0, ops_ok = 0, ops_info = 0, ops_fail = 0, messages = 0;
  double simulated = 0;
  std::size_t reports = 0;
  std::optional<std::uint64_t> violation_seed;
  std::map<std::string, std::map<std::string, std::uint64_t>> covered;
  std::cout << "raft_sim: " << (soak > 0 ? "soak for " + std::to_string(std::uint64_t(soak)) + " s from seed "
                                         : std::to_string(count) + " seeds from ")
            << first << (expect ? ", expecting a violation" : "") << std::endl;

  for (std::uint64_t seed = first;; ++seed) {
    if (soak > 0 ? wall() >= soak : seed >= first + count) break;
    sim::run_options ro;
    ro.trace = trace && single;
    ro.verbose = verbose;
    ro.profile = profile;
    if (ro.trace) ro.trace_tail = std::size_t(-1);
    const sim::outcome o = sim::run_seed(seed, ro);
    ++ran;
    ops_ok += o.ops_ok, ops_info += o.ops_info, ops_fail += o.ops_fail, messages += o.messages;
    sim::merge_coverage(covered, o.coverage);
    simulated += std::chrono::duration<double>(o.simulated).count();
    if (single) {
      std::cout << "seed " << seed << ": " << o.setup << "\n  " << o.history.size() << " operations ("
                << o.ops_ok << " ok, " << o.ops_info << " unknown, " << o.ops_fail << " failed), "
                << o.messages << " messages, " << std::fixed << std::setprecision(3)
                << std::chrono::duration<double>(o.simulated).count() << " s simulated, final term "
                << o.last_term << ", trace hash " << std::hex << o.trace_hash << std::dec << "\n";
      if (trace) {
        std::cout << "  fault schedule:\n";
        for (const auto& s : o.schedule) std::cout << "    " << s << "\n";
        std::cout << "  trace:\n";
        for (const auto& l : o.trace) std::cout << "    " << l << "\n";
      }
      if (!dump.empty()) {
        std::ofstream f(dump);
        f << "# raft_sim seed " << seed << ": " << o.setup << "\n";
        for (const auto& op : o.history) f << lin::format(op) << "\n";
        std::cout << "  history written to " << dump << "\n";
      }
    }
    if (!o.passed()) {
      ++failed;
      if (expect && (o.unsafe() || (any_failure && o.kind == sim::outcome::failure::liveness))) {
        violation_seed = seed;
        std::cout << "violation found: seed " << seed << " (" << sim::to_string(o.kind) << "), after " << ran
                  << (ran == 1 ? " seed" : " seeds") << " and " << std::fixed << std::setprecision(1) << wall()
                  << " s\n";
        const auto replay = sim::replay_traced(o, verbose, profile);
        std::cout << sim::report(o, &replay, program);
        break;
      }
      if (reports < max_reports && !(trace && single)) {
        ++reports;
        const auto replay = sim::replay_traced(o, verbose, profile);
        std::cout << sim::report(o, &replay, program) << std::flush;
      } else {
        std::cout << "FAIL seed " << seed << " (" << sim::to_string(o.kind) << "): "
                  << o.problems.front().substr(0, o.problems.front().find('\n')) << "\n";
        if (single) std::cout << sim::report(o, nullptr, program);
      }
    } else if (!quiet && !single && ran % 100 == 0) {
      std::cout << "  " << ran << " seeds, " << failed << " failed, " << std::fixed << std::setprecision(0)
                << wall() << " s" << std::endl;
    }
  }

  const double w = wall();
  const double cpu = double(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  std::cout << std::fixed << std::setprecision(1) << "raft_sim: " << ran << " seeds (" << first << ".."
            << first + ran - 1 << "), " << failed << " failed; " << ops_ok + ops_info + ops_fail
            << " client operations (" << ops_ok << " ok, " << ops_info << " unknown, " << ops_fail
            << " refused), " << messages << " messages\n"
            << "raft_sim: " << simulated << " s (" << simulated / 3600.0 << " h) simulated in " << w
            << " s wall, " << cpu << " s CPU: " << (w > 0 ? double(ran) * 60.0 / w : 0.0) << " seeds/min and "
            << (w > 0 ? simulated / w : 0.0) << " simulated s per wall s; per CPU s "
            << (cpu > 0 ? double(ran) / cpu : 0.0) << " seeds, " << (cpu > 0 ? simulated / cpu : 0.0)
            << " simulated s\n";
  if (coverage) std::cout << "raft_sim: coverage (how often, in which context)\n" << sim::format_coverage(covered);
  if (require_coverage) {
    const auto missing = sim::missing_coverage(covered);
    for (const auto& m : missing) std::cout << "raft_sim: not covered: " << m << "\n";
    if (!missing.empty()) {
      std::cout << "raft_sim: " << missing.size() << " reachable cells of the coverage table stayed at zero\n";
      return 1;
    }
    std::cout << "raft_sim: every reachable cell of the coverage table was exercised\n";
  }
  if (expect) {
    if (violation_seed) return 0;
    std::cout << "raft_sim: expected a violation (the mutation must be caught), found none\n";
    return 1;
  }
  return failed == 0 ? 0 : 1;
}
