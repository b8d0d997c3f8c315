#include "ssseg/model.hpp"

#include <algorithm>

#include <cmath>
#include <fstream>
#include <sstream>

#include "ssseg/error.hpp"
#include "ssseg/files.hpp"

namespace ssseg {

namespace {

const nlohmann::json& need(const nlohmann::json& obj, const std::string& key, const std::string& where) {
  if (!obj.is_object() || !obj.contains(key)) throw Error("invalid model.json: missing " + key, where, "re-run ssseg export");
  return obj.at(key);
}

}  // namespace

ModelSpec parse_model(const nlohmann::json& d, const fs::path& root, const std::string& where) {
  if (!d.is_object() || d.value("format", "") != kModelFormat)
    throw Error("not an ssseg model.json (no ssseg.model format marker)", where, "pass a directory written by ssseg export");
  const int version = d.contains("format_version") && d["format_version"].is_number_integer()
                          ? d["format_version"].get<int>() : -1;
  if (version != 1 && version != kModelFormatVersion)
    throw Error("model.json format " + need(d, "format_version", where).dump() + " (written by ssseg " +
                    d.value("ssseg_version", "?") + "), this runtime reads format 1 or 2",
                where, "re-export the run with a matching ssseg");
  ModelSpec m;
  m.root = root;
  m.data = d;
  try {
    const auto& classes = need(d, "classes", where);
    m.classes_name = need(classes, "name", where).get<std::string>();
    m.class_names = need(classes, "names", where).get<std::vector<std::string>>();
    for (const auto& c : need(classes, "colors", where)) m.colors.push_back(c.get<std::array<std::uint8_t, 3>>());
    const auto& input = need(d, "input", where);
    if (need(input, "dtype", where) != "uint8" || need(input, "layout", where) != "NHWC")
      throw Error("invalid model.json: input must be uint8 NHWC", where, "re-run ssseg export");
    m.height = need(input, "height", where).get<int>();
    m.width = need(input, "width", where).get<int>();
    const auto& b = need(input, "batch", where);
    m.batch = {need(b, "min", where).get<int>(), need(b, "opt", where).get<int>(), need(b, "max", where).get<int>()};
    m.resize = need(input, "resize", where).get<std::string>() != "none";
    // the graphs normalise (each segmenter its own mean/std): this runtime feeds them raw uint8 pixels
    if (d.contains("normalization") && !need(d["normalization"], "in_graph", where).get<bool>())
      throw Error("model.json wants normalisation outside the graph, which this runtime does not do", where,
                  "re-run ssseg export (it puts the segmenter's normalisation in the graph)");
    if (d.contains("segmenter")) {
      const auto& seg = d["segmenter"];
      m.segmenter = need(seg, "name", where).get<std::string>();
      const int multiple = need(seg, "input_multiple", where).get<int>();
      if (multiple < 1 || m.height % multiple || m.width % multiple)
        throw Error("invalid model.json: input " + std::to_string(m.height) + "x" + std::to_string(m.width) +
                        " is not a multiple of " + m.segmenter + "'s " + std::to_string(multiple),
                    where, "re-run ssseg export");
    }
    m.gate = parse_gate(need(d, "gate", where), m.class_names.size(), where);
    need(need(need(d, "graphs", where), "labeler", where), "file", where);
    need(d, "engines", where);
    if (d.contains("reduced")) {
      if (!d["reduced"].is_array())
        throw Error("invalid model.json: reduced must be a list", where, "re-run ssseg export");
      for (const auto& r : d["reduced"])
        for (const char* key : {"graph", "precision", "file", "sha256"})
          if (!r.contains(key) || !r[key].is_string())
            throw Error(std::string("invalid model.json: a reduced graph lacks ") + key, where, "re-run ssseg export");
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("invalid model.json: ") + e.what(), where, "re-run ssseg export");
  }
  if (m.class_names.empty() || m.class_names.size() != m.colors.size() || m.class_names.size() > 254)
    throw Error("invalid model.json: classes.names and classes.colors disagree", where, "re-run ssseg export");
  if (m.height <= 0 || m.width <= 0 || m.batch.min < 1 || m.batch.min > m.batch.opt || m.batch.opt > m.batch.max)
    throw Error("invalid model.json: input size or batch range", where, "re-run ssseg export");
  return m;
}

ModelSpec read_model(const fs::path& path) {
  const fs::path file = fs::is_directory(path) ? path / "model.json" : path;
  if (!fs::is_regular_file(file))
    throw Error("no model.json here", file.string(), "pass a directory written by ssseg export --out");
  std::ifstream in(file);
  nlohmann::json d;
  try {
    d = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    throw Error("cannot read model.json (not JSON)", file.string(), "re-run ssseg export; the file is damaged");
  }
  return parse_model(d, file.parent_path(), file.string());
}

fs::path ModelSpec::graph(const std::string& name, bool check_hash, const std::string& precision) const {
  const nlohmann::json* entry = nullptr;
  if (precision == "fp32") {
    const auto& graphs = data.at("graphs");
    if (!graphs.contains(name))
      throw Error("this model has no " + name + " graph", (root / "model.json").string(), "re-export the run");
    entry = &graphs.at(name);
  } else {
    // of the graphs made for ONNX Runtime (ssseg-cpp's reduced-precision backend), the most specific one:
    // INT8's U8S8 form over the S8S8 one that TensorRT also takes
    size_t fewest = 0;
    if (data.contains("reduced"))
      for (const auto& r : data.at("reduced")) {
        if (r.value("graph", "") != name || r.value("precision", "") != precision) continue;
        const auto runtimes = r.value("runtimes", std::vector<std::string>{"tensorrt", "onnxruntime"});
        if (std::find(runtimes.begin(), runtimes.end(), "onnxruntime") == runtimes.end()) continue;
        if (entry == nullptr || runtimes.size() < fewest) {
          entry = &r;
          fewest = runtimes.size();
        }
      }
    if (entry == nullptr) {
      std::string have;
      for (const auto& p : precisions(name)) have += (have.empty() ? "" : ", ") + p;
      throw Error("this model has no " + precision + " " + name + " graph (has: " + have + ")",
                  (root / "model.json").string(),
                  "re-export with --precision fp32," + precision + (precision == "int8" ? " --calib-data FOLDER" : ""));
    }
  }
  const fs::path p = root / entry->at("file").get<std::string>();
  if (!fs::is_regular_file(p)) throw Error("file named by model.json is missing", p.string(), "re-run ssseg export");
  if (check_hash && sha256_file(p) != entry->at("sha256").get<std::string>())
    throw Error("file does not match the sha256 in model.json (changed after export)", p.string(),
                "re-run ssseg export instead of editing artifacts by hand");
  return p;
}

std::vector<std::string> ModelSpec::precisions(const std::string& name) const {
  std::vector<std::string> out{"fp32"};
  for (const auto& r : data.value("reduced", nlohmann::json::array())) {
    const std::string p = r.value("precision", "?");
    if (r.value("graph", "") == name && std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

std::string ModelSpec::graph_sha256(const std::string& name) const {
  return data.at("graphs").at(name).at("sha256").get<std::string>();
}

std::vector<nlohmann::json> ModelSpec::engines(const std::string& graph_name) const {
  std::vector<nlohmann::json> out;
  for (const auto& e : data.at("engines"))
    if (e.value("graph", "") == graph_name) out.push_back(e);
  return out;
}

}  // namespace ssseg
