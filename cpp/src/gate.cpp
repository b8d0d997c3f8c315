#include "ssseg/gate.hpp"

#include <utility>

#include "ssseg/error.hpp"

namespace ssseg {

std::string GateChoice::describe() const {
  if (!table) return "ungated";
  return settings.is_array() ? "per-class confidence thresholds" : "confidence >= " + settings.dump();
}

GateChoice resolve_gate(const GateOptions& options, const ModelSpec& model) {
  // validated first, as the Python CLI does (NaN is outside [0, 1] too)
  for (const auto& [name, value] : {std::pair{"--threshold", options.threshold},
                                    std::pair{"--target-precision", options.target_precision}})
    if (value && !(*value >= 0.0 && *value <= 1.0)) throw Error(std::string(name) + " must lie in [0, 1]", name);
  if (options.threshold && options.target_precision)
    throw Error("--threshold and --target-precision both given", "--threshold",
                "one threshold for all classes (--threshold), or per-class ones (--target-precision)");
  GateChoice gate;
  if (!model.gated) {
    if (options.threshold || options.confidence || options.target_precision)
      throw Error("--threshold/--target-precision/--confidence need a confidence source, and this model has none",
                  (model.root / "model.json").string(), "drop them to write ungated labels");
    return gate;
  }
  if (options.threshold) {
    gate.table = gate_table(static_cast<float>(*options.threshold));
    gate.settings = *options.threshold;
  } else if (options.target_precision || !model.class_thresholds.empty()) {
    const auto table = options.target_precision ? model.thresholds_for(*options.target_precision)
                                                : model.class_thresholds;
    gate.table = gate_table(table);
    gate.settings = nlohmann::ordered_json::array();
    for (const auto& t : table) gate.settings.push_back(t ? nlohmann::ordered_json(*t) : nlohmann::ordered_json());
  } else {
    gate.table = gate_table(static_cast<float>(*model.threshold));
    gate.settings = *model.threshold;
  }
  return gate;
}

}  // namespace ssseg
