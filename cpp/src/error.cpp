#include "ssseg/error.hpp"

namespace ssseg {

namespace {
std::string compose(const std::string& message, const std::string& path, const std::string& fix) {
  std::string text = path.empty() ? message : path + ": " + message;
  if (!fix.empty()) text += " \u2014 " + fix;
  return text;
}
}  // namespace

Error::Error(const std::string& message, const std::string& path, const std::string& fix)
    : std::runtime_error(compose(message, path, fix)) {}

}  // namespace ssseg
