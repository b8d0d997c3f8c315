#pragma once
// The confidence gate, in one place, as the Python runtime's ssseg/gate.py: model.json's gate as data (read and
// validated by parse_gate), the rule that chooses what a job applies (resolve_gate), and the rule that applies
// it (gate). The parity ctest and the unit tests hold the two runtimes equal.

#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "ssseg/gate_options.hpp"

namespace ssseg {

/// Per-class thresholds, one per class: a number in [0, 1], or unset for a class never kept.
using ClassTable = std::vector<std::optional<double>>;

/// model.json's `gate` (schema: runtime/model.py).
struct Gate {
  bool available = false;
  std::optional<double> threshold;  // one threshold for every class
  ClassTable thresholds;            // a per-class table, used instead of threshold (empty: none)
  std::map<std::string, ClassTable> tables;  // the tables export calibrated, by precision ("0.97")

  /// The table export calibrated for `precision`; throws naming `where` and the precisions it has.
  const ClassTable& table_for(double precision, const std::string& where) const;
};

/// model.json's `gate` object for a model of `classes` classes; a malformed one (a wrong length, a number
/// outside [0, 1], a string) throws one line naming `where` and the key.
Gate parse_gate(const nlohmann::json& gate, size_t classes, const std::string& where);

/// A gate as one threshold per label value (+inf: never kept): a single threshold and a per-class table are
/// the same rule.
using GateTable = std::array<float, 256>;
GateTable gate_table(float threshold);
/// Per-class thresholds (unset: never kept); label values beyond the classes are never kept either.
GateTable gate_table(const ClassTable& per_class);

/// Labels (CV_8U) where confidence (CV_32F) >= table[label], else `ignore` (NaN confidence: `ignore`, as numpy).
cv::Mat gate(const cv::Mat& labels, const cv::Mat& confidence, const GateTable& table, unsigned char ignore = 255);

struct GateChoice {
  std::optional<GateTable> table;  // unset: ungated
  nlohmann::ordered_json settings;  // job.json's "threshold", identical to the Python runtime's
  std::string describe() const;    // for the job's first line
};

/// --threshold T (every class at T), else --target-precision P (export's table for P), else model.json's
/// per-class table, else its threshold (ssseg.gate.Gate.choose); refuses gate options for a model without a
/// confidence source. `where` names model.json in errors.
GateChoice resolve_gate(const GateOptions& options, const Gate& gate, const std::string& where);

}  // namespace ssseg
