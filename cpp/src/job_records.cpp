// The label job's own records (records.hpp): OUT/job.json, the summary, and how the job ends. A source's
// records (journal, manifest) are records.cpp.

#include <ctime>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "ssseg/error.hpp"
#include "ssseg/files.hpp"
#include "ssseg/records.hpp"

namespace ssseg {

std::string now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::ostringstream s;
  s << std::put_time(&tm, "%Y-%m-%dT%H:%M:%S+0000");
  return s.str();
}

void check_marker(const ojson& d, const char* format, const std::string& what, const fs::path& path) {
  if (!d.is_object() || d.value("format", "") != format)
    throw Error("not " + what + " (no " + format + " format marker)", path.string(), "choose a new --out");
  if (d.value("format_version", -1) != kFormatVersion)
    throw Error(what + " of another format version", path.string(), "label into a new --out");
}

void check_job(const fs::path& out, const ojson& settings, const std::function<bool(const std::string&)>& ignore) {
  const fs::path job = out / kJobFile;
  if (fs::is_regular_file(job)) {
    ojson d;
    try {
      d = ojson::parse(read_text(job));
    } catch (const nlohmann::json::exception&) {
      throw Error("job.json is damaged", job.string(), "choose a new --out");
    }
    check_marker(d, kJobFormat, "an ssseg label job", job);
    ojson old = d.value("settings", ojson::object());
    if (!old.contains("orientation")) old["orientation"] = "stored";  // a job from before the setting (LEGACY_SETTINGS)
    std::string diffs;
    for (const auto& [k, v] : settings.items())
      if (!old.contains(k) || old.at(k) != v)
        diffs += (diffs.empty() ? "" : ", ") + k + " " + (old.contains(k) ? old.at(k).dump() : "?") + " -> " + v.dump();
    if (!diffs.empty())
      throw Error("labels here were made with other settings (" + diffs + ")", job.string(),
                  "repeat the original options to continue, or choose a new --out");
    return;
  }
  std::error_code ec;
  if (!fs::is_directory(out)) return;
  for (const auto& entry : fs::directory_iterator(out, ec))
    if (!ignore(entry.path().filename().string()))
      throw Error("output folder is not empty and was not written by ssseg label", out.string(),
                "choose a new or empty --out; nothing is overwritten");
}

void write_job(const fs::path& out, const ojson& settings) {
  if (fs::is_regular_file(out / kJobFile)) return;
  ojson d = {{"format", kJobFormat}, {"format_version", kFormatVersion}, {"ssseg_version", kVersion},
             {"created", now()}, {"settings", settings}};
  atomic_write(out / kJobFile, d.dump(2) + "\n");
}

ojson summary(const std::vector<ojson>& results, const ojson& settings, const ojson& run) {
  std::vector<ojson> pool;
  ojson failures = ojson::array(), damaged = ojson::array();
  int skipped = 0;
  long long pixels = 0, confident = 0;
  int sampled = 0, written = 0, below = 0;
  for (const auto& r : results) {
    for (const auto& low : r["lowest_coverage"]) {
      ojson entry = {{"source", r["key"]}};
      for (const auto& [k, v] : low.items()) entry[k] = v;
      pool.push_back(entry);
    }
    if (!r["errors"].empty()) failures.push_back({{"source", r["key"]}, {"input", r["input"]}, {"errors", r["errors"]}});
    if (!r["damage"].empty())
      damaged.push_back({{"source", r["key"]}, {"input", r["input"]}, {"frames_skipped", r["frames_skipped"]},
                         {"damage", r["damage"]}});
    skipped += r["frames_skipped"].get<int>();
    pixels += r["totals"]["pixels"].get<long long>();
    confident += r["totals"]["confident"].get<long long>();
    sampled += r["frames_sampled"].get<int>();
    written += r["frames_written"].get<int>();
    below += r["frames_below_min_coverage"].get<int>();
  }
  std::sort(pool.begin(), pool.end(), [](const ojson& a, const ojson& b) {
    return std::make_tuple(a["coverage"].get<double>(), a["source"].get<std::string>(), a["index"].get<int>()) <
           std::make_tuple(b["coverage"].get<double>(), b["source"].get<std::string>(), b["index"].get<int>());
  });
  if (pool.size() > kNextToLabel) pool.resize(kNextToLabel);
  return {{"format", kSummaryFormat}, {"format_version", kFormatVersion}, {"ssseg_version", kVersion},
          {"settings", settings}, {"shard", nullptr}, {"sources", static_cast<int>(results.size())},
          {"failed_sources", static_cast<int>(failures.size())}, {"frames_sampled", sampled},
          {"frames_written", written}, {"frames_below_min_coverage", below}, {"frames_skipped", skipped},
          {"coverage", pixels ? ojson(static_cast<double>(confident) / static_cast<double>(pixels)) : ojson()},
          {"next_to_label", pool}, {"failures", failures}, {"damaged", damaged}, {"per_source", results}, {"run", run}};
}

int job_outcome(const ojson& report, const fs::path& out, int labeled, bool interrupted,
                const std::string& resume_command) {
  if (interrupted) {
    std::cerr << "interrupted: " << labeled << " frames labeled in this run are kept in "
              << out.string() << " (every frame on disk is complete; summary.json lists them); continue with: "
              << resume_command << std::endl;
    return kExitInterrupted;
  }
  for (const auto& d : report["damaged"]) {  // whatever the other sources did
    std::string ranges;
    for (const auto& r : d["damage"])
      ranges += (ranges.empty() ? "" : ", ") + std::to_string(r["first"].get<int>()) + "-" +
                std::to_string(r["last"].get<int>()) + (r["skipped"].get<bool>() ? "" : " (concealed)");
    std::cout << "DAMAGED " << d["input"].get<std::string>() << ": " << d["frames_skipped"] << " frame(s) skipped, frames "
              << ranges << std::endl;
  }
  if (!report["failures"].empty()) {
    for (const auto& f : report["failures"]) {
      const auto& e = f["errors"][0];
      std::cout << "FAILED " << f["input"].get<std::string>() << ": "
                << (e.contains("source") ? e["source"].get<std::string>() : e["error"].get<std::string>()) << std::endl;
    }
    throw Error(std::to_string(report["failures"].size()) + " of " + std::to_string(report["per_source"].size()) +
                    " sources failed (listed above and in " + (out / kSummaryFile).string() + ")",
                "", "fix or remove those inputs and run again with --resume");
  }
  if (!report["damaged"].empty()) {
    std::cout << report["damaged"].size() << " source(s) had damaged data: the rest of each was labeled; the frame "
              << "ranges are under 'damaged' in " << (out / kSummaryFile).string() << " (exit status 3)"
              << std::endl;
    return kExitDamaged;
  }
  return 0;
}

}  // namespace ssseg
