#pragma once
// One job per output folder at a time, with the lock files `ssseg label` writes and honours (label/lock.py):
// OUT/.ssseg-label.lock, or .ssseg-label.shard-I-of-N.lock per shard of a Python job. A lock names its holder
// (host, process, runtime, start); one left by a killed process on this host is taken over.

#include <filesystem>
#include <string>

namespace ssseg {

/// Whether `name` is a job lock (or the temporary it is written to); check_job looks past them.
bool is_lock_file(const std::string& name);

class JobLock {
 public:
  /// Creates OUT if needed and takes its lock; throws ssseg::Error naming the holder when a live job has it
  /// (this runtime has no shards, so any lock in OUT conflicts).
  explicit JobLock(const std::filesystem::path& out);
  ~JobLock();
  JobLock(const JobLock&) = delete;
  JobLock& operator=(const JobLock&) = delete;

 private:
  std::filesystem::path path_;
};

}  // namespace ssseg
