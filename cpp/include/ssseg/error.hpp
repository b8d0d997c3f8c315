#pragma once

#include <stdexcept>
#include <string>

namespace ssseg {

/// Every error a user can cause: one line naming the file (or option) and the fix, as in the Python CLI.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, const std::string& path = "", const std::string& fix = "");
};

}  // namespace ssseg
