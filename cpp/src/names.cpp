#include "ssseg/names.hpp"

#include <algorithm>
#include <regex>
#include <unordered_map>

#include "ssseg/files.hpp"
#include "ssseg/rules.hpp"

namespace ssseg {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

std::string safe_name(const std::string& text, bool allow_underscore) {
  static const std::regex unsafe("[^A-Za-z0-9._-]+");
  std::string name = std::regex_replace(text, unsafe, "_");
  if (!allow_underscore)
    for (auto& c : name)
      if (c == '_') c = '-';
  const auto first = name.find_first_not_of("._-");
  if (first == std::string::npos) return "input";
  const auto last = name.find_last_not_of("._-");
  name = name.substr(first, last - first + 1).substr(0, static_cast<size_t>(label_rules().name_length));
  return name.empty() ? "input" : name;
}

std::string short_hash(const std::string& text) {
  return sha256_hex(text.data(), text.size()).substr(0, static_cast<size_t>(label_rules().hash_digits));
}

std::vector<std::string> unique_names(const std::vector<std::string>& bases, const std::vector<std::string>& ids,
                                      bool allow_underscore, const std::set<std::string>& taken) {
  // the job's own files (label/rules.json), and what the rule appends
  const std::regex& reserved = label_rules().reserved;
  static const std::regex hashed("-[0-9a-f]{" + std::to_string(label_rules().hash_digits) + "}$");
  std::vector<std::string> cleaned;
  std::unordered_map<std::string, int> count;
  for (const auto& b : bases) cleaned.push_back(safe_name(b, allow_underscore));
  for (const auto& c : cleaned) ++count[lower(c)];
  for (const auto& t : taken) ++count[lower(t)];
  std::vector<std::string> out;
  for (size_t i = 0; i < bases.size(); ++i) {
    std::string as_is = bases[i];
    if (!allow_underscore) std::replace(as_is.begin(), as_is.end(), '_', '-');
    const std::string& clean = cleaned[i];
    const bool plain = clean == as_is && count[lower(clean)] == 1 && !std::regex_match(clean, reserved) &&
                       !std::regex_search(clean, hashed);
    out.push_back(plain ? clean : clean + "-" + short_hash(ids[i]));
  }
  return out;
}

std::vector<std::string> assign_keys(const std::vector<std::string>& bases, const std::vector<std::string>& wheres,
                                     const std::map<std::string, std::string>& recorded) {
  std::vector<std::string> keys(bases.size()), fresh_bases, fresh_ids;
  std::vector<size_t> fresh;
  for (size_t i = 0; i < bases.size(); ++i) {
    const auto it = recorded.find(wheres[i]);
    if (it != recorded.end()) {
      keys[i] = it->second;
    } else {
      fresh.push_back(i);
      fresh_bases.push_back(bases[i]);
      fresh_ids.push_back(wheres[i]);
    }
  }
  std::set<std::string> taken;  // also of sources this run was not given: their folders stay theirs
  for (const auto& [where, key] : recorded) taken.insert(key);
  const auto named = unique_names(fresh_bases, fresh_ids, false, taken);
  for (size_t j = 0; j < fresh.size(); ++j) keys[fresh[j]] = named[j];
  return keys;
}

std::vector<std::string> frame_names(const std::vector<std::string>& stems, const std::vector<std::string>& files) {
  return unique_names(stems, files, true);
}

}  // namespace ssseg
