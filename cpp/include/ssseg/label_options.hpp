#pragma once
// The options of `ssseg-cpp label` (main.cpp parses them; label.cpp and pipeline.cpp read them).

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ssseg/gate_options.hpp"

namespace ssseg {

/// `ssseg-cpp label`: the options of `ssseg label` this runtime offers, same meaning and defaults.
struct LabelOptions {
  std::vector<std::string> inputs;  // video files, image folders, list files (.txt)
  std::filesystem::path model, out;
  GateOptions gate;  // --threshold, --target-precision, --confidence
  std::optional<int> every;  // label every K-th frame (unset: all, recorded as null like the Python CLI)
  std::optional<int> batch;  // unset: the model's optimal batch
  std::string format = "png";
  bool resume = false;
  std::string backend = "auto";
  int threads = 0;  // 0: OpenCV's default
  int writers = 2;
  std::string orientation = "displayed";  // or "stored": frames as stored, no display matrix or EXIF applied
  bool recursive = false;  // input folders: also their subfolders and the videos in them
  std::string command;  // this command line, recorded in the summary's run
  std::string resume_command;  // this command line with --resume: how an interrupted job continues
};

}  // namespace ssseg
