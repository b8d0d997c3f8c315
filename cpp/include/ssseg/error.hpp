#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace ssseg {

/// Every error a user can cause: one line naming the file (or option) and the fix, as in the Python CLI.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, const std::string& path = "", const std::string& fix = "");
};

/// A filesystem failure (a full or read-only disk, a file where --out should be) as an Error naming the path
/// and the fix, worded as ssseg.errors.filesystem_error words it.
Error filesystem_error(const std::filesystem::path& path, std::error_code code);

}  // namespace ssseg
