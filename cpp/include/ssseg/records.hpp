#pragma once
// What has been labeled, in the same files and schema as `ssseg label` (label/records.py): OUT/job.json,
// a per-source journal frames.jsonl (one line per frame once its files are in place), manifest.json when
// the source ends (streamed from the journal), and summary.json.

#include <filesystem>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ssseg {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

inline constexpr const char* kVersion = "0.1.0";
inline constexpr int kNextToLabel = 100;
/// Exit status when every source was labeled but damaged stretches of video were skipped (as `ssseg label`).
inline constexpr int kExitDamaged = 3;
/// Exit status after Ctrl-C (as a shell reports SIGINT), once the manifests and summary are written.
inline constexpr int kExitInterrupted = 130;
inline constexpr size_t kMaxDamage = 20;  // damaged ranges per source in the summary (the manifest lists all)

// the record files and their format markers, as label/records.py names them: OUT/job.json, the summary, and
// per source a journal of its frames while it is labeled and its manifest when done
inline constexpr const char* kJobFile = "job.json";
inline constexpr const char* kSummaryFile = "summary.json";
inline constexpr const char* kJournalFile = "frames.jsonl";
inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr const char* kJobFormat = "ssseg.label.job";
inline constexpr const char* kSummaryFormat = "ssseg.label.summary";
inline constexpr const char* kManifestFormat = "ssseg.label.manifest";
inline constexpr int kFormatVersion = 1;

/// Throws, naming `path`, unless `d` carries the `format` marker at kFormatVersion.
void check_marker(const ojson& d, const char* format, const std::string& what, const fs::path& path);

/// UTC time as ISO 8601.
std::string now();

/// Refuse an OUT_DIR holding other files (names `ignore` accepts aside: the job locks, its FFmpeg log) or
/// labels made with other settings.
void check_job(const fs::path& out, const ojson& settings, const std::function<bool(const std::string&)>& ignore);
/// Write OUT/job.json once.
void write_job(const fs::path& out, const ojson& settings);

struct SourceInfo {
  std::string input, kind, key;  // kind: video | images
  std::vector<fs::path> images;  // kind images
  std::string error;             // cannot be labeled at all
  std::string base;              // the name its key is made from (stem, folder name, path under a --recursive folder)
  std::vector<std::string> notes;  // what expanding it left out, for the console
  ojson identity() const;        // {bytes, mtime, files}
  std::string where() const;     // its absolute path: the identity a resume matches it by
};

/// {absolute path: key} of the sources labeled into `out` before (their manifests and journals), so a resume
/// gives each its key again whatever else it is given.
std::map<std::string, std::string> recorded_keys(const fs::path& out);

class SourceRecords {
 public:
  SourceRecords(SourceInfo source, fs::path meta, fs::path out, ojson settings, std::vector<std::string> classes);

  /// Load an earlier run's frames (--resume); throws when output exists and `resume` is false.
  void prepare(bool resume);
  void open_journal();
  void record(const ojson& rec);
  /// A damaged stretch of the source, journaled like a frame (a resumed run finds it again).
  void record_damage(int first, int last, const std::string& reason, bool skipped);
  /// Write manifest.json; returns the compact result the job summary needs.
  ojson finalize(const ojson& run, bool interrupted);

  const SourceInfo& source() const { return source_; }
  bool done(int index) const { return done_.count(index) > 0; }
  bool complete_before() const { return complete_before_; }
  const fs::path& meta() const { return meta_; }

  std::string error;  // source-level error, set while decoding
  int decoded = 0, sampled = 0, labeled = 0;

 private:
  bool valid(const ojson& rec) const;

  SourceInfo source_;
  fs::path meta_, out_, journal_path_, manifest_path_;
  ojson settings_, previous_head_;
  std::vector<std::string> classes_;
  std::set<int> done_;
  std::vector<std::string> kept_;
  bool complete_before_ = false;
  std::ofstream journal_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::mutex mutex_;
};

ojson summary(const std::vector<ojson>& results, const ojson& settings, const ojson& run);

/// The job's closing lines and exit status, as `ssseg label` ends (label/job.py): 130 after Ctrl-C (what was
/// kept, the command that continues), an Error for failed sources (exit 1), 3 when damaged stretches were
/// skipped (their frame ranges), else 0.
int job_outcome(const ojson& report, const fs::path& out, int labeled, bool interrupted,
                const std::string& resume_command);

}  // namespace ssseg
