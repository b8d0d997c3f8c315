#include "ssseg/error.hpp"

#include <cctype>

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

Error filesystem_error(const std::filesystem::path& path, std::error_code code) {
  std::string reason = code.message(), fix = "check that path and the disk, then run the command again";
  if (code == std::errc::no_space_on_device) {
    fix = "free space there (or choose another --out), then run the same command again with --resume (what was "
          "written before is intact)";
  } else if (code == std::errc::read_only_file_system) {
    fix = "the file system is read-only: choose a writable --out";
  } else if (code == std::errc::permission_denied || code == std::errc::operation_not_permitted) {
    fix = "choose a --out you can write to, or fix the permissions there";
  } else if (code == std::errc::not_a_directory || code == std::errc::file_exists) {
    reason = "a file is where a folder is needed";
    fix = "--out names a folder: choose another path or move the file";
  }
  if (!reason.empty()) reason[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(reason[0])));
  return Error(reason, path.string(), fix);
}

}  // namespace ssseg
