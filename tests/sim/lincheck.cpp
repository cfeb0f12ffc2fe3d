// lincheck - checks a key-value client history for linearizability.
//
//   lincheck [--quiet] [--max-configurations N] FILE     (FILE "-" reads standard input)
//
// The file has one operation a line (lines starting with '#', and blank lines, are skipped):
//   <client> <start_ns> <end_ns|-> <put|append|get> <key> <value|~> <ok|fail|info>
// put/append: value is the argument. get: value is what was read, '~' if the key was absent.
// ok: took effect between start and end. fail: certainly did not take effect. info: unknown
// (it may take effect at any time after start, or never; end may be '-').
//
// Exit status: 0 linearizable, 1 not linearizable (the key and an explanation are printed),
// 2 malformed file or bad arguments (the line number is printed), 3 the search gave up.
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "linearizability.hpp"

int main(int argc, char** argv) {
  bool quiet = false;
  lin::limits lim;
  std::string path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quiet" || a == "-q") {
      quiet = true;
    } else if (a == "--max-configurations" && i + 1 < argc) {
      lim.max_configurations = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--help" || a == "-h") {
      std::cout << "usage: lincheck [--quiet] [--max-configurations N] FILE|-\n";
      return 0;
    } else if (path.empty() && (a == "-" || a[0] != '-')) {
      path = a;
    } else {
      std::cerr << "lincheck: unexpected argument " << a << "\n";
      return 2;
    }
  }
  if (path.empty()) {
    std::cerr << "usage: lincheck [--quiet] [--max-configurations N] FILE|-\n";
    return 2;
  }
  std::vector<lin::kv_op> history;
  std::optional<lin::parse_error> err;
  if (path == "-") {
    err = lin::parse(std::cin, history);
  } else {
    std::ifstream in(path);
    if (!in) {
      std::cerr << "lincheck: cannot open " << path << "\n";
      return 2;
    }
    err = lin::parse(in, history);
  }
  if (err) {
    std::cerr << path << ":" << err->line << ": malformed: " << err->what << "\n";
    return 2;
  }
  const lin::result r = lin::check(history, lim);
  switch (r.outcome) {
    case lin::result::verdict::linearizable:
      if (!quiet)
        std::cout << "linearizable: " << history.size() << " operations on " << r.keys << " keys ("
                  << r.configurations << " configurations explored)\n";
      return 0;
    case lin::result::verdict::not_linearizable:
      std::cout << "NOT linearizable: key " << r.key << "\n" << r.explanation;
      return 1;
    case lin::result::verdict::unknown:
      std::cout << "unknown: " << r.explanation << "\n";
      return 3;
  }
  return 3;
}
