#include "ssseg/inputs.hpp"

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>

#include "ssseg/error.hpp"
#include "ssseg/names.hpp"

namespace ssseg {

namespace {

const std::vector<std::string> kImageExts = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"};
const std::vector<std::string> kVideoExts = {".mp4", ".mkv", ".avi", ".mov", ".m4v", ".webm", ".ts",
                                             ".mts", ".mpg", ".mpeg", ".h264", ".h265"};
const std::vector<std::string> kListExts = {".txt", ".lst", ".list"};
constexpr int kMaxDepth = 16;  // --recursive: how deep folders nest (label/inputs.py)

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}
bool has_ext(const fs::path& p, const std::vector<std::string>& exts) {
  return std::find(exts.begin(), exts.end(), lower(p.extension().string())) != exts.end();
}
// As Python's os.path.abspath: "sub/.." is the folder it means, "frames/" is named like "frames".
fs::path absolute_path(const std::string& input) {
  fs::path p = fs::absolute(fs::path(input)).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  return p;
}

}  // namespace

std::string SourceInfo::where() const { return absolute_path(input).string(); }

std::vector<SourceInfo> expand_inputs(const std::vector<std::string>& inputs, bool recursive,
                                      const std::map<std::string, std::string>& recorded) {
  std::vector<SourceInfo> sources;
  std::map<std::string, size_t> folders, videos;
  auto add_images = [&](const fs::path& folder, const std::vector<fs::path>& images, const std::string& label,
                        const std::string& base) -> SourceInfo& {
    const std::string key = fs::weakly_canonical(folder).string();
    if (!folders.count(key)) {
      folders[key] = sources.size();
      sources.push_back({label, "images", "", {}, "", base.empty() ? absolute_path(label).filename().string() : base, {}});
    }
    auto& src = sources[folders[key]];
    src.images.insert(src.images.end(), images.begin(), images.end());
    std::sort(src.images.begin(), src.images.end());
    src.images.erase(std::unique(src.images.begin(), src.images.end()), src.images.end());
    return src;
  };
  auto add_video = [&](const fs::path& path, const std::string& base) {
    const std::string key = fs::weakly_canonical(path).string();
    if (videos.count(key)) return;
    videos[key] = sources.size();
    sources.push_back({path.string(), "video", "", {}, fs::file_size(path) ? "" : "file is empty",
                       base.empty() ? absolute_path(path.string()).stem().string() : base, {}});
  };
  std::function<void(const fs::path&, std::string, int)> add_folder = [&](const fs::path& path, std::string base,
                                                                          int depth) {
    std::vector<fs::path> images, clips, subfolders;
    for (const auto& e : fs::directory_iterator(path)) {
      if (e.is_regular_file() && has_ext(e.path(), kImageExts)) images.push_back(e.path());
      else if (e.is_regular_file() && has_ext(e.path(), kVideoExts)) clips.push_back(e.path());
      else if (e.is_directory() && e.path().filename().string()[0] != '.') subfolders.push_back(e.path());
    }
    std::sort(clips.begin(), clips.end());
    std::sort(subfolders.begin(), subfolders.end());
    if (base.empty()) base = absolute_path(path.string()).filename().string();
    if (recursive) {
      if (!images.empty() || depth == 0) {
        const bool empty = images.empty() && clips.empty() && subfolders.empty();
        if (!images.empty() || empty) {
          auto& src = add_images(path, images, path.string(), base);
          if (empty) src.error = "folder holds no images (.png/.jpg/...) or videos";
        }
      }
      for (const auto& clip : clips) add_video(clip, base + "-" + clip.stem().string());
      for (const auto& sub : subfolders)
        if (depth < kMaxDepth && !fs::is_symlink(sub)) add_folder(sub, base + "-" + sub.filename().string(), depth + 1);
      return;
    }
    auto& src = add_images(path, images, path.string(), base);
    std::vector<std::string> left;
    if (!clips.empty()) left.push_back(std::to_string(clips.size()) + " video(s)");
    if (!subfolders.empty()) left.push_back(std::to_string(subfolders.size()) + " subfolder(s)");
    const std::string what = left.size() == 2 ? left[0] + " and " + left[1] : left.empty() ? "" : left[0];
    if (images.empty())
      src.error = "folder holds no images (.png/.jpg/...)" +
                  (what.empty() ? "" : "; it holds " + what + ": pass --recursive to label them");
    else if (!what.empty())
      src.notes.push_back(what + " in it not labeled (pass --recursive to label them)");
  };
  std::function<void(const std::string&, const std::string&, int)> add = [&](const std::string& item,
                                                                               const std::string& origin, int depth) {
    const fs::path path(item);
    const std::string where = origin.empty() ? "" : " (listed in " + origin + ")";
    if (fs::is_directory(path)) {
      add_folder(path, "", 0);
      return;
    }
    if (fs::is_regular_file(path)) {
      if (has_ext(path, kListExts)) {
        if (depth > 4) throw Error("list files nest too deeply", path.string(), "list videos, folders or images");
        std::ifstream in(path);
        for (std::string line; std::getline(in, line);) {
          const auto a = line.find_first_not_of(" \t\r"), b = line.find_last_not_of(" \t\r");
          if (a == std::string::npos || line[a] == '#') continue;
          const fs::path target(line.substr(a, b - a + 1));
          add(target.is_absolute() ? target.string() : (path.parent_path() / target).string(), path.string(), depth + 1);
        }
        return;
      }
      if (has_ext(path, kImageExts)) {
        add_images(path.parent_path(), {path}, path.parent_path().string(), "");
        return;
      }
      add_video(path, "");
      return;
    }
    throw Error("input does not exist" + where, item, "pass video files, image folders or list files (.txt)");
  };
  for (const auto& item : inputs) add(item, "", 0);
  std::vector<std::string> bases, wheres;
  for (const auto& s : sources) {
    bases.push_back(s.base);
    wheres.push_back(s.where());
  }
  const auto keys = assign_keys(bases, wheres, recorded);
  for (size_t i = 0; i < sources.size(); ++i) sources[i].key = keys[i];
  return sources;
}

}  // namespace ssseg
