#include "ssseg/gate.hpp"

#include <cmath>
#include <limits>
#include <sstream>
#include <utility>

#include "ssseg/error.hpp"

namespace ssseg {

namespace {

[[noreturn]] void invalid(const std::string& what, const std::string& where) {
  throw Error("invalid model.json: " + what, where, "re-run ssseg export");
}

bool is_unit(const nlohmann::json& v) {
  return v.is_number() && v.get<double>() >= 0.0 && v.get<double>() <= 1.0;  // NaN is not
}

ClassTable parse_table(const nlohmann::json& t, size_t classes, const std::string& key, const std::string& where) {
  if (!t.is_array() || t.size() != classes)
    invalid(key + " must hold one entry per class (" + std::to_string(classes) + "), not " +
                (t.is_array() ? std::to_string(t.size()) : t.type_name()), where);
  ClassTable out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i].is_null()) {
      out.emplace_back();
    } else if (is_unit(t[i])) {
      out.emplace_back(t[i].get<double>());
    } else {
      invalid(key + " must hold " + std::to_string(classes) + " numbers in [0, 1] or null, one per class (entry " +
                  std::to_string(i) + " is " + t[i].dump() + ")", where);
    }
  }
  return out;
}

}  // namespace

Gate parse_gate(const nlohmann::json& g, size_t classes, const std::string& where) {
  if (!g.is_object()) invalid("gate must be an object", where);
  if (!g.contains("available") || !g["available"].is_boolean())
    invalid("gate.available is missing or not a boolean", where);
  if (!g.contains("threshold")) invalid("missing gate.threshold", where);
  Gate gate;
  gate.available = g["available"].get<bool>();
  if (!g["threshold"].is_null()) {
    if (!is_unit(g["threshold"]))
      invalid("gate.threshold must be a number in [0, 1] or null, not " + g["threshold"].dump(), where);
    gate.threshold = g["threshold"].get<double>();
  }
  if (g.contains("thresholds") && !g["thresholds"].is_null())
    gate.thresholds = parse_table(g["thresholds"], classes, "gate.thresholds", where);
  if (g.contains("calibration") && g["calibration"].is_object() && g["calibration"].contains("tables")) {
    const auto& tables = g["calibration"]["tables"];
    if (!tables.is_object()) invalid("gate.calibration.tables must be an object of precision: thresholds", where);
    for (const auto& [p, t] : tables.items())
      gate.tables[p] = parse_table(t, classes, "gate.calibration.tables[" + p + "]", where);
  }
  if (gate.available && !gate.threshold && gate.thresholds.empty())
    invalid("a gated model (gate.available true) needs gate.threshold or gate.thresholds", where);
  return gate;
}

const ClassTable& Gate::table_for(double precision, const std::string& where) const {
  std::string have;
  for (const auto& [p, table] : tables) {
    if (std::abs(std::stod(p) - precision) < 1e-9) return table;
    have += (have.empty() ? "" : ", ") + p;
  }
  std::ostringstream p;
  p << precision;
  throw Error("this model has no per-class thresholds for precision " + p.str() + " (calibrated: " +
                  (have.empty() ? "none" : have) + ")", where, "re-export with --target-precision " + p.str());
}

GateTable gate_table(float threshold) {
  GateTable table;
  table.fill(threshold);
  return table;
}

GateTable gate_table(const ClassTable& per_class) {
  GateTable table;
  table.fill(std::numeric_limits<float>::infinity());
  for (size_t c = 0; c < per_class.size() && c < table.size(); ++c)
    if (per_class[c]) table[c] = static_cast<float>(*per_class[c]);  // float32, as the Python table
  return table;
}

cv::Mat gate(const cv::Mat& labels, const cv::Mat& confidence, const GateTable& table, unsigned char ignore) {
  if (labels.type() != CV_8UC1 || confidence.type() != CV_32FC1 || labels.size() != confidence.size())
    throw Error("gate needs uint8 labels and float confidence of the same size");
  cv::Mat out(labels.size(), CV_8UC1);
  for (int y = 0; y < labels.rows; ++y) {
    const std::uint8_t* l = labels.ptr<std::uint8_t>(y);
    const float* c = confidence.ptr<float>(y);
    std::uint8_t* o = out.ptr<std::uint8_t>(y);
    for (int x = 0; x < labels.cols; ++x) o[x] = c[x] >= table[l[x]] ? l[x] : ignore;
  }
  return out;
}

std::string GateChoice::describe() const {
  if (!table) return "ungated";
  return settings.is_array() ? "per-class confidence thresholds" : "confidence >= " + settings.dump();
}

GateChoice resolve_gate(const GateOptions& options, const Gate& model, const std::string& where) {
  // validated first, as the Python CLI does (NaN is outside [0, 1] too)
  for (const auto& [name, value] : {std::pair{"--threshold", options.threshold},
                                    std::pair{"--target-precision", options.target_precision}})
    if (value && !(*value >= 0.0 && *value <= 1.0)) throw Error(std::string(name) + " must lie in [0, 1]", name);
  if (options.threshold && options.target_precision)
    throw Error("--threshold and --target-precision both given", "--threshold",
                "one threshold for all classes (--threshold), or per-class ones (--target-precision)");
  GateChoice gate;
  if (!model.available) {
    if (options.threshold || options.confidence || options.target_precision)
      throw Error("--threshold/--target-precision/--confidence need a confidence source, and this model has none",
                  where, "drop them to write ungated labels");
    return gate;
  }
  if (options.threshold) {
    gate.table = gate_table(static_cast<float>(*options.threshold));
    gate.settings = *options.threshold;
  } else if (options.target_precision || !model.thresholds.empty()) {
    const auto& table = options.target_precision ? model.table_for(*options.target_precision, where)
                                                 : model.thresholds;
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
