#pragma once
// The naming and numbering rules both runtimes share: label/rules.json, compiled in by CMake (the Python
// runtime reads the same file, label/rules.py).

#include <regex>

namespace ssseg {

struct LabelRules {
  std::regex reserved;  // the job's own file names, which no source takes (ignoring case)
  int hash_digits = 0;  // hex digits of sha256 that tell same-named sources apart
  int name_length = 0;  // the longest name a source or frame gets
  int gap_window = 0;   // frames after damage within which a late frame keeps its number and a gap is frames lost
  double grid_tolerance = 0;  // frame periods a timestamp may sit off the grid of a constant-rate video
  int min_regular = 0;  // frames one period apart before a jump counts as frames lost
};

/// label/rules.json, parsed once.
const LabelRules& label_rules();

}  // namespace ssseg
