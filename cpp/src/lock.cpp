#include "ssseg/lock.hpp"

#include <cerrno>
#include <iostream>
#include <regex>

#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "ssseg/error.hpp"
#include "ssseg/files.hpp"
#include "ssseg/records.hpp"

namespace ssseg {

namespace {

constexpr const char* kLock = ".ssseg-label.lock";
const std::regex kShardLock(R"(^\.ssseg-label\.shard-\d+-of-\d+\.lock$)");

std::string host_name() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

// This process never counts: a lock naming it was left by an earlier process with the same number.
bool alive(long pid) { return pid != ::getpid() && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

nlohmann::json holder(const fs::path& path) {
  try {
    auto j = nlohmann::json::parse(read_text(path));
    if (j.is_object() && j.contains("pid") && j["pid"].is_number_integer()) return j;
  } catch (const nlohmann::json::exception&) {
  }
  return nullptr;
}

[[noreturn]] void refuse(const fs::path& path) {
  const auto h = holder(path);
  const std::string who =
      h.is_null() ? "another job"
                  : "another " + h.value("runtime", std::string("ssseg")) + " job (process " +
                        std::to_string(h["pid"].get<long>()) + " on " + h.value("host", std::string("?")) +
                        ", started " + h.value("started", std::string("?")) + ")";
  throw Error(who + " is labeling into this folder", path.string(),
              "wait for it to end, or split the work with --shard I/N; if no such job runs, delete this lock "
              "file and run again with --resume");
}

}  // namespace

bool is_lock_file(const std::string& name) {
  static const std::regex temp(R"(^\.(.+)\.tmp\d+$)");
  std::smatch m;
  const std::string base = std::regex_match(name, m, temp) ? m[1].str() : name;
  return base == kLock || std::regex_match(base, kShardLock);
}

JobLock::JobLock(const fs::path& out) {
  fs::create_directories(out);
  for (const auto& entry : fs::directory_iterator(out)) {
    const std::string name = entry.path().filename().string();
    if (name != kLock && !std::regex_match(name, kShardLock)) continue;
    const auto h = holder(entry.path());
    if (h.is_null() || h.value("host", std::string()) != host_name() || alive(h["pid"].get<long>())) refuse(entry.path());
    fs::remove(entry.path());
    std::cout << entry.path().string() << ": removed a stale lock (process " << h["pid"].get<long>() << ", "
              << h.value("runtime", std::string("ssseg")) << ", started " << h.value("started", std::string("?"))
              << ", is gone); run --resume to keep what it labeled" << std::endl;
  }
  const fs::path lock = out / kLock;
  const fs::path tmp = temporary_name(lock);
  atomic_write(tmp, nlohmann::json({{"host", host_name()}, {"pid", ::getpid()}, {"runtime", "ssseg-cpp"},
                                    {"started", now()}}).dump() + "\n");
  std::error_code ec;
  fs::create_hard_link(tmp, lock, ec);  // fails if it exists: two jobs starting at once cannot both win
  fs::remove(tmp);
  if (ec == std::errc::file_exists) refuse(lock);
  if (ec) throw fs::filesystem_error("cannot create the job lock", lock, ec);
  path_ = lock;
}

JobLock::~JobLock() {
  std::error_code ec;
  fs::remove(path_, ec);
}

}  // namespace ssseg
