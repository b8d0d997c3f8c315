#pragma once
// Which gate a label job applies, from its options and model.json: one threshold, a per-class table, or none.
// The same rules as the Python runtime's label/job.py resolve_threshold.

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "ssseg/image.hpp"
#include "ssseg/model.hpp"

namespace ssseg {

/// The options of `ssseg label` that choose the gate (label.hpp's LabelOptions holds one).
struct GateOptions {
  std::optional<double> threshold;  // default: model.json's per-class thresholds, else its threshold
  std::optional<double> target_precision;  // or: the per-class thresholds export calibrated for this precision
  bool confidence = false;  // also write the confidence map: needs a confidence source too
};

struct GateChoice {
  std::optional<GateTable> table;  // unset: ungated
  nlohmann::ordered_json settings;  // job.json's "threshold", identical to the Python runtime's
  std::string describe() const;    // for the job's first line
};

/// --threshold T (every class at T), else --target-precision P (export's table for P), else model.json's
/// per-class table, else its threshold; refuses gate options for a model without a confidence source.
GateChoice resolve_gate(const GateOptions& options, const ModelSpec& model);

}  // namespace ssseg
