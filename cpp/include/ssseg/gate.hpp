#pragma once
// Which gate a label job applies, from its options and model.json: one threshold, a per-class table, or none.
// The same rules as the Python runtime's label/job.py resolve_threshold.

#include <optional>
#include <string>

#include "ssseg/image.hpp"
#include "ssseg/label.hpp"
#include "ssseg/model.hpp"
#include "ssseg/records.hpp"

namespace ssseg {

struct GateChoice {
  std::optional<GateTable> table;  // unset: ungated
  ojson settings;                  // job.json's "threshold", identical to the Python runtime's
  std::string describe() const;    // for the job's first line
};

/// --threshold T (every class at T), else --target-precision P (export's table for P), else model.json's
/// per-class table, else its threshold; refuses gate options for a model without a confidence source.
GateChoice resolve_gate(const LabelOptions& options, const ModelSpec& model);

}  // namespace ssseg
