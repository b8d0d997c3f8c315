#include "ssseg/names.hpp"

#include <algorithm>
#include <regex>
#include <set>
#include <unordered_map>

namespace ssseg {

std::string safe_name(const std::string& text, bool allow_underscore) {
  static const std::regex unsafe("[^A-Za-z0-9._-]+");
  std::string name = std::regex_replace(text, unsafe, "_");
  if (!allow_underscore)
    for (auto& c : name)
      if (c == '_') c = '-';
  const auto first = name.find_first_not_of("._-");
  if (first == std::string::npos) return "input";
  const auto last = name.find_last_not_of("._-");
  name = name.substr(first, last - first + 1).substr(0, 80);
  return name.empty() ? "input" : name;
}

std::vector<std::string> assign_keys(const std::vector<std::string>& bases, const std::vector<std::string>& order) {
  static const std::regex reserved(R"(^(job\.json|summary(\.shard-\d+-of-\d+)?\.json|meta)$)");
  std::vector<std::string> safe;
  for (const auto& b : bases) {
    std::string base = safe_name(b, false);
    if (std::regex_match(base, reserved)) base += "-source";
    safe.push_back(base);
  }
  std::vector<size_t> by_order(bases.size());
  for (size_t i = 0; i < by_order.size(); ++i) by_order[i] = i;
  if (order.size() == bases.size())
    std::stable_sort(by_order.begin(), by_order.end(), [&](size_t a, size_t b) { return order[a] < order[b]; });
  std::set<std::string> used;
  std::vector<std::string> keys(bases.size());
  for (const size_t i : by_order) {
    std::string key = safe[i];
    for (int n = 2; used.count(key); ++n) key = safe[i] + "-" + std::to_string(n);
    used.insert(key);
    keys[i] = key;
  }
  return keys;
}

std::vector<std::string> frame_names(const std::vector<std::string>& stems) {
  std::unordered_map<std::string, int> seen;
  std::vector<std::string> names;
  for (const auto& s : stems) {
    const std::string base = safe_name(s);
    const int n = seen[base]++;
    names.push_back(n == 0 ? base : base + "-" + std::to_string(n + 1));
  }
  return names;
}

}  // namespace ssseg
