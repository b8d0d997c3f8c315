#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ssseg/label_options.hpp"

namespace ssseg {

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
