#pragma once
// model.json: the single description of an exported model, written by `ssseg export` (schema in
// runtime/model.py). This reader checks the parts the C++ runtime relies on.

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ssseg/gate.hpp"

namespace ssseg {

namespace fs = std::filesystem;

inline constexpr const char* kModelFormat = "ssseg.model";
inline constexpr int kModelFormatVersion = 2;  // 1 is read too (no per-class thresholds)
inline constexpr std::uint8_t kIgnore = 255;  // label of not-confident pixels

struct BatchRange {
  int min = 1, opt = 1, max = 1;
};

struct ModelSpec {
  fs::path root;
  nlohmann::json data;
  std::string classes_name;
  std::vector<std::string> class_names;
  std::vector<std::array<std::uint8_t, 3>> colors;
  int height = 0, width = 0;
  BatchRange batch;
  Gate gate;  // model.json's gate (gate.hpp)
  bool resize = true;  // input.resize == "bilinear"
  std::string segmenter = "dsnet-fast-ss";  // segmenter.name (exports older than the registry: the paper's net)

  /// Path of graph `name` (segmenter, labeler, aux) in `precision` (fp32, or a reduced graph of model.json's
  /// `reduced` list: fp16, int8 as Q/DQ) after checking it exists and matches its sha256.
  fs::path graph(const std::string& name, bool check_hash = true, const std::string& precision = "fp32") const;
  std::string graph_sha256(const std::string& name) const;
  /// The ONNX precisions of `name`: fp32 and the reduced ones export wrote.
  std::vector<std::string> precisions(const std::string& name) const;
  /// TensorRT engine entries of `graph`, in model.json order.
  std::vector<nlohmann::json> engines(const std::string& graph) const;
};

/// Load and validate MODEL_DIR/model.json (`path` may be the directory or the file).
ModelSpec read_model(const fs::path& path);
/// Parse an already loaded model.json (`where` names it in errors).
ModelSpec parse_model(const nlohmann::json& data, const fs::path& root, const std::string& where);

}  // namespace ssseg
