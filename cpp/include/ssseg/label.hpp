#pragma once

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

/// Returns the exit status (records.hpp: job_outcome): 0 when every source was labeled completely, 3 when
/// damaged stretches were skipped, 130 after Ctrl-C; throws (exit status 1) when some source failed.
int run_label(const LabelOptions& options);

struct BenchOptions {
  std::filesystem::path model;
  std::string backend = "auto";
  int batch = 1, iters = 100, warmup = 20, threads = 0;
  std::filesystem::path json;
};

void run_bench(const BenchOptions& options);

}  // namespace ssseg
