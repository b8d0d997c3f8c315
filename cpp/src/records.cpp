// A source's records (records.hpp): the journal of its frames while it is labeled, its manifest when done, and
// what a resume reads back of both; the job's own records are job_records.cpp. Over 300 lines on purpose:
// finalize() writes the manifest that prepare() and recorded_keys() read, and the three must agree.

#include "ssseg/records.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include <sys/stat.h>

#include <opencv2/imgcodecs.hpp>

#include "ssseg/error.hpp"
#include "ssseg/files.hpp"

namespace ssseg {

namespace {

std::optional<ojson> parse_line(const std::string& line) {
  try {
    return ojson::parse(line);
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // a line torn by a power cut: that frame is labeled again
  }
}


}  // namespace


ojson SourceInfo::identity() const {
  std::vector<fs::path> files = kind == "images" ? images : std::vector<fs::path>{fs::path(input)};
  long long bytes = 0;
  double mtime = 0.0;
  for (const auto& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) continue;
    bytes += st.st_size;
    mtime = std::max(mtime, static_cast<double>(st.st_mtim.tv_sec) + static_cast<double>(st.st_mtim.tv_nsec) * 1e-9);
  }
  return {{"bytes", bytes}, {"mtime", mtime}, {"files", static_cast<int>(files.size())}};
}

SourceRecords::SourceRecords(SourceInfo source, fs::path meta, fs::path out, ojson settings,
                             std::vector<std::string> classes)
    : error(source.error),
      source_(std::move(source)),
      meta_(std::move(meta)),
      out_(std::move(out)),
      journal_path_(meta_ / kJournalFile),
      manifest_path_(meta_ / kManifestFile),
      settings_(std::move(settings)),
      classes_(std::move(classes)) {}

void SourceRecords::prepare(bool resume) {
  const bool has_output = fs::exists(journal_path_) || fs::exists(manifest_path_);
  if (has_output && !resume)
    throw Error(source_.input + " was already labeled here", meta_.string(),
                "pass --resume to continue, or choose a new --out");
  std::map<int, std::string> records;
  ojson old_identity;
  if (fs::exists(manifest_path_)) {
    auto prev = parse_line(read_text(manifest_path_));
    if (prev) {
      check_marker(*prev, kManifestFormat, "an ssseg label manifest", manifest_path_);
      old_identity = (*prev)["source"].value("identity", ojson());
      for (const auto& rec : (*prev)["frames"]) records[rec.at("index").get<int>()] = rec.dump();
      prev->erase("frames");
      previous_head_ = *prev;
    }
  }
  {
    std::ifstream in(journal_path_);
    for (std::string line; std::getline(in, line);) {
      auto rec = parse_line(line);
      if (!rec) continue;
      if (rec->contains("identity"))
        old_identity = (*rec)["identity"];
      else if (rec->contains("index"))
        records[(*rec)["index"].get<int>()] = line;
    }
  }
  const ojson identity = source_.identity();
  if (!records.empty() && !old_identity.is_null() && old_identity != identity)
    throw Error(source_.input + " changed since it was labeled", meta_.string(),
                "label it into a new --out; the existing labels belong to the old file");
  for (const auto& [index, line] : records) {
    if (valid(ojson::parse(line))) {
      kept_.push_back(line);
      done_.insert(index);
    }
  }
  complete_before_ = previous_head_.is_object() && previous_head_.value("complete", false) &&
                     kept_.size() == records.size() &&
                     static_cast<int>(records.size()) == previous_head_.value("frames_sampled", -1);
}

bool SourceRecords::valid(const ojson& rec) const {
  if (rec.contains("error")) return false;
  if (!rec.value("written", false)) return true;
  const auto size = rec.at("size");
  const ojson digests = rec.value("sha256", ojson::array());
  const auto& files = rec.at("files");
  for (size_t i = 0; i < files.size(); ++i) {
    const fs::path path = out_ / files[i].get<std::string>();
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return false;
    if (i < digests.size()) {  // as written: a file cut short or changed is labeled again
      if (sha256_file(path) != digests[i].get<std::string>()) return false;
      continue;
    }
    // a record from before checksums: all of the PNG must decode, at the frame's size
    const auto hw = png_size(path);
    if (!hw || hw->first != size[0].get<int>() || hw->second != size[1].get<int>()) return false;
    if (cv::imread(path.string(), cv::IMREAD_UNCHANGED).empty()) return false;
  }
  return true;
}

std::map<std::string, std::string> recorded_keys(const fs::path& out) {
  std::map<std::string, std::string> found;
  std::error_code ec;
  if (!fs::is_directory(out, ec)) return found;
  for (const auto& entry : fs::directory_iterator(out, ec)) {
    if (!entry.is_directory()) continue;
    ojson head;
    const fs::path manifest = entry.path() / kManifestFile, journal = entry.path() / kJournalFile;
    if (fs::is_regular_file(manifest)) {  // its head, read up to the frames (label/records.py manifest_head)
      std::ifstream in(manifest);
      std::string text;
      for (std::string line; std::getline(in, line);) {
        const auto at = line.rfind("\"frames\": [");
        if (at != std::string::npos && line.find_first_not_of(" ") == at) {
          while (!text.empty() && (text.back() == '\n' || text.back() == ',' || text.back() == ' ')) text.pop_back();
          text += "}";
          break;
        }
        text += line + "\n";
      }
      if (auto m = parse_line(text); m && m->is_object()) {
        head = m->value("source", ojson::object());
        head["key"] = m->value("key", "");
      }
    }
    if (!head.is_object() || head.value("key", "").empty()) {
      std::ifstream in(journal);
      std::string line;
      if (std::getline(in, line))
        if (auto h = parse_line(line); h && h->is_object()) head = *h;
      if (head.is_object() && !head.contains("key")) head["key"] = entry.path().filename().string();
    }
    if (!head.is_object() || head.value("key", "").empty()) continue;
    std::string where = head.value("path", "");
    if (where.empty() && !head.value("input", "").empty()) {
      SourceInfo old;
      old.input = head.value("input", "");
      where = old.where();
    }
    if (!where.empty() && head.value("kind", "") != "stream") found.emplace(where, head.value("key", ""));
  }
  return found;
}

void SourceRecords::open_journal() {
  if (complete_before_ || !error.empty()) return;
  fs::create_directories(meta_);
  std::string text = ojson({{"identity", source_.identity()}, {"input", source_.input}, {"path", source_.where()},
                            {"key", source_.key}}).dump() + "\n";
  for (const auto& line : kept_) text += line + "\n";
  kept_.clear();
  atomic_write(journal_path_, text);
  journal_.open(journal_path_, std::ios::app);
  if (!journal_) throw Error("cannot open the journal for appending", journal_path_.string(), "fix permissions there");
}

void SourceRecords::record(const ojson& rec) {
  const std::string line = rec.dump();
  std::lock_guard<std::mutex> lock(mutex_);
  if (!rec.contains("error") && rec.contains("index")) ++labeled;
  journal_ << line << '\n';
  journal_.flush();
  if (!journal_) throw filesystem_error(journal_path_, std::error_code(errno ? errno : EIO, std::generic_category()));
}

void SourceRecords::record_damage(int first, int last, const std::string& reason, bool skipped) {
  record({{"damage", {first, last}}, {"skipped", skipped}, {"reason", reason}});
}

namespace {
/// Damage records as ranges, neighbours of one kind and reason merged (label/records.py's _ranges).
ojson damage_ranges(const std::map<int, ojson>& damage) {
  ojson out = ojson::array();
  for (const auto& [first, rec] : damage) {
    const int a = rec["damage"][0].get<int>(), b = rec["damage"][1].get<int>();
    if (!out.empty()) {
      ojson& last = out.back();
      if (last["first"].get<int>() <= a && a <= last["last"].get<int>() + 1 && last["skipped"] == rec["skipped"] &&
          last["reason"] == rec["reason"]) {
        last["last"] = std::max(last["last"].get<int>(), b);
        continue;
      }
    }
    out.push_back({{"first", a}, {"last", b}, {"skipped", rec["skipped"]}, {"reason", rec["reason"]}});
  }
  return out;
}
}  // namespace

ojson SourceRecords::finalize(const ojson& run, bool interrupted) {
  auto compact = [&](const ojson& m) {
    ojson c = ojson::object();
    for (const char* k : {"key", "complete", "errors", "frames_decoded", "frames_sampled", "frames_written",
                          "frames_below_min_coverage", "totals", "lowest_coverage"})
      c[k] = m.at(k);
    c["input"] = m["source"]["input"];
    c["frames_skipped"] = m.value("frames_skipped", 0);
    ojson damage = m.value("damage", ojson::array());
    if (damage.size() > kMaxDamage) damage.erase(damage.begin() + kMaxDamage, damage.end());
    c["damage"] = damage;
    c["manifest"] = fs::relative(manifest_path_, out_).generic_string();
    return c;
  };
  if (journal_.is_open()) journal_.close();
  if (complete_before_) return compact(previous_head_);
  ojson errors = ojson::array();
  if (!error.empty()) errors.push_back({{"source", error}});
  std::map<int, std::streamoff> offsets;  // frame -> its latest journal line, read back one at a time
  std::map<int, ojson> damage;             // first frame -> its damage record
  std::ifstream in(journal_path_, std::ios::binary);
  for (std::streamoff pos = in.tellg(); in; pos = in.tellg()) {
    std::string line;
    if (!std::getline(in, line)) break;
    auto rec = parse_line(line);
    if (!rec || rec->contains("identity")) continue;
    if (rec->contains("damage")) {
      damage[(*rec)["damage"][0].get<int>()] = *rec;
      continue;
    }
    const int index = (*rec)["index"].get<int>();
    if (rec->contains("error")) {
      errors.push_back({{"index", index}, {"name", (*rec)["name"]}, {"error", (*rec)["error"]}});
      offsets.erase(index);
    } else {
      offsets[index] = pos;
    }
  }
  in.clear();
  auto read_at = [&](std::streamoff pos) {
    in.seekg(pos);
    std::string line;
    std::getline(in, line);
    return ojson::parse(line);
  };
  std::vector<long long> per_class(classes_.size(), 0);
  long long pixels = 0;
  int written = 0;
  std::vector<std::tuple<double, int, std::string, std::string>> low;
  for (const auto& [index, pos] : offsets) {
    const ojson rec = read_at(pos);
    pixels += rec["size"][0].get<long long>() * rec["size"][1].get<long long>();
    for (size_t c = 0; c < per_class.size(); ++c) per_class[c] += rec["classes"][c].get<long long>();
    written += rec["written"].get<bool>() ? 1 : 0;
    low.emplace_back(rec["coverage"].get<double>(), index, rec["name"].get<std::string>(),
                     rec["files"].empty() ? "" : rec["files"][0].get<std::string>());
    if (low.size() > 4 * kNextToLabel) {
      std::sort(low.begin(), low.end());
      low.resize(kNextToLabel);
    }
  }
  std::sort(low.begin(), low.end());
  if (low.size() > kNextToLabel) low.resize(kNextToLabel);
  long long confident = 0;
  ojson per_class_json = ojson::object();
  for (size_t c = 0; c < per_class.size(); ++c) {
    confident += per_class[c];
    per_class_json[classes_[c]] = per_class[c];
  }
  ojson lowest = ojson::array();
  for (const auto& [cov, index, name, file] : low)
    lowest.push_back({{"index", index}, {"name", name}, {"coverage", cov}, {"file", file.empty() ? ojson() : ojson(file)}});
  ojson runs = previous_head_.is_object() ? previous_head_.value("runs", ojson::array()) : ojson::array();
  ojson this_run = run;
  this_run["frames_labeled"] = labeled;
  this_run["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  runs.push_back(this_run);
  const bool complete = !interrupted && errors.empty();
  const ojson ranges = damage_ranges(damage);
  int skipped = 0;
  for (const auto& d : ranges)
    if (d["skipped"].get<bool>()) skipped += d["last"].get<int>() - d["first"].get<int>() + 1;
  ojson head = {
      {"format", kManifestFormat}, {"format_version", kFormatVersion}, {"ssseg_version", kVersion},
      {"key", source_.key},
      {"source", {{"input", source_.input}, {"path", source_.where()}, {"kind", source_.kind},
                  {"identity", source_.identity()}}},
      {"settings", settings_}, {"complete", complete}, {"interrupted", interrupted}, {"errors", errors},
      {"frames_decoded", decoded}, {"frames_sampled", sampled}, {"frames_written", written},
      {"frames_below_min_coverage", static_cast<int>(offsets.size()) - written},
      {"frames_skipped", skipped}, {"damage", ranges},
      {"totals", {{"pixels", pixels}, {"confident", confident},
                  {"coverage", pixels ? ojson(static_cast<double>(confident) / static_cast<double>(pixels)) : ojson()},
                  {"per_class", per_class_json}}},
      {"lowest_coverage", lowest}, {"overlay", nullptr}, {"runs", runs}};
  fs::create_directories(meta_);  // a source that failed before its first frame has no folder yet
  const fs::path tmp = temporary_name(manifest_path_);
  {
    std::ofstream out(tmp, std::ios::trunc);
    std::string text = head.dump(2);
    text.resize(text.size() - 2);  // reopen the object for the streamed frame records
    out << text << ",\n  \"frames\": [";
    bool first = true;
    for (const auto& [index, pos] : offsets) {
      out << (first ? "\n    " : ",\n    ") << read_at(pos).dump();
      first = false;
    }
    out << "\n  ]\n}\n";
    out.flush();
    if (!out) {
      const std::error_code code(errno ? errno : EIO, std::generic_category());
      out.close();
      std::error_code ignored;
      fs::remove(tmp, ignored);  // the journal stays: --resume writes the manifest from it
      throw filesystem_error(manifest_path_, code);
    }
  }
  fs::rename(tmp, manifest_path_);
  in.close();
  fs::remove(journal_path_);
  return compact(head);
}

}  // namespace ssseg
