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
const std::vector<std::string> kListExts = {".txt", ".lst", ".list"};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}
bool has_ext(const fs::path& p, const std::vector<std::string>& exts) {
  return std::find(exts.begin(), exts.end(), lower(p.extension().string())) != exts.end();
}

}  // namespace

std::vector<SourceInfo> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<SourceInfo> sources;
  std::map<std::string, size_t> folders, videos;
  auto add_images = [&](const fs::path& folder, const std::vector<fs::path>& images, const std::string& label) {
    const std::string key = fs::weakly_canonical(folder).string();
    if (!folders.count(key)) {
      folders[key] = sources.size();
      sources.push_back({label, "images", "", {}, ""});
    }
    auto& src = sources[folders[key]];
    src.images.insert(src.images.end(), images.begin(), images.end());
    std::sort(src.images.begin(), src.images.end());
    src.images.erase(std::unique(src.images.begin(), src.images.end()), src.images.end());
  };
  std::function<void(const std::string&, const std::string&, int)> add = [&](const std::string& item,
                                                                               const std::string& origin, int depth) {
    const fs::path path(item);
    const std::string where = origin.empty() ? "" : " (listed in " + origin + ")";
    if (fs::is_directory(path)) {
      std::vector<fs::path> images;
      for (const auto& e : fs::directory_iterator(path))
        if (e.is_regular_file() && has_ext(e.path(), kImageExts)) images.push_back(e.path());
      add_images(path, images, path.string());
      if (images.empty()) sources[folders[fs::weakly_canonical(path).string()]].error = "folder holds no images (.png/.jpg/...)";
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
        add_images(path.parent_path(), {path}, path.parent_path().string());
        return;
      }
      const std::string key = fs::weakly_canonical(path).string();
      if (!videos.count(key)) {
        videos[key] = sources.size();
        sources.push_back({path.string(), "video", "", {}, fs::file_size(path) ? "" : "file is empty"});
      }
      return;
    }
    throw Error("input does not exist" + where, item, "pass video files, image folders or list files (.txt)");
  };
  for (const auto& item : inputs) add(item, "", 0);
  std::vector<std::string> bases, order;
  for (const auto& s : sources) {
    // named after the absolute path, as Python's os.path.abspath: "sub/.." is the folder it means
    fs::path p = fs::absolute(fs::path(s.input)).lexically_normal();
    if (!p.has_filename()) p = p.parent_path();  // "frames/" is named like "frames"
    bases.push_back(s.kind == "images" ? p.filename().string() : p.stem().string());
    order.push_back(p.string());
  }
  const auto keys = assign_keys(bases, order);
  for (size_t i = 0; i < sources.size(); ++i) sources[i].key = keys[i];
  return sources;
}

}  // namespace ssseg
