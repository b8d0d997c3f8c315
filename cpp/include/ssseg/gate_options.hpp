#pragma once
// The options of `ssseg-cpp label` that choose the gate (label.hpp's LabelOptions holds one); what they mean
// is gate.hpp's resolve_gate.

#include <optional>

namespace ssseg {

struct GateOptions {
  std::optional<double> threshold;  // default: model.json's per-class thresholds, else its threshold
  std::optional<double> target_precision;  // or: the per-class thresholds export calibrated for this precision
  bool confidence = false;  // also write the confidence map: needs a confidence source too
};

}  // namespace ssseg
