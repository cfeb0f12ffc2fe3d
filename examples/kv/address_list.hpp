// examples/kv/address_list.hpp - the "ID=HOST:PORT,ID=HOST:PORT,..." lists that kv_server
// (--peers) and kv_client (--servers) take on their command lines.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kv {

struct listed_address {
  std::string host;
  std::string port;  // as written; each program checks it its own way
};

/// "1=127.0.0.1:7001,2=host:7002" -> {1: ("127.0.0.1", "7001"), 2: ("host", "7002")}.
/// Throws std::invalid_argument naming the bad item (no '=', no ':', a bad id, an id twice).
inline std::map<std::uint64_t, listed_address> parse_address_list(std::string_view list) {
  std::map<std::uint64_t, listed_address> out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    const auto eq = item.find('=');
    const auto colon = item.rfind(':');
    if (eq == std::string_view::npos || colon == std::string_view::npos || colon < eq)
      throw std::invalid_argument("bad item '" + std::string(item) + "' (want ID=HOST:PORT)");
    const std::string id_text(item.substr(0, eq));
    char* end = nullptr;
    errno = 0;
    const unsigned long long id = std::strtoull(id_text.c_str(), &end, 10);
    if (id_text.empty() || id_text[0] == '-' || *end != '\0' || errno != 0)
      throw std::invalid_argument("bad id in '" + std::string(item) + "'");
    listed_address a{std::string(item.substr(eq + 1, colon - eq - 1)), std::string(item.substr(colon + 1))};
    if (!out.emplace(id, std::move(a)).second)
      throw std::invalid_argument("id " + id_text + " listed twice");
  }
  return out;
}

}  // namespace kv
