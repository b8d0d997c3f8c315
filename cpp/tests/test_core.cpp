// Unit tests of the C++ runtime's core: preprocessing (bit-exact with Pillow), gating, names, model.json.

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <optional>
#include <vector>

#include "ssseg/error.hpp"
#include "ssseg/files.hpp"
#include "ssseg/gate.hpp"
#include "ssseg/image.hpp"
#include "ssseg/model.hpp"
#include "ssseg/names.hpp"

namespace {

#include "pillow_expected.inc"

cv::Mat pattern(int h, int w) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) m.at<cv::Vec3b>(y, x)[c] = static_cast<unsigned char>(((y * w + x) * 37 + c * 11) % 256);
  return m;
}

cv::Mat pattern2() {  // lab2 of make_pillow_expected.py, and its 3-channel form
  cv::Mat m(23, 30, CV_8UC1);
  for (int i = 0; i < 23 * 30; ++i) m.at<unsigned char>(i / 30, i % 30) = static_cast<unsigned char>(i % 251);
  return m;
}

std::vector<int> flat(const cv::Mat& m) {
  std::vector<int> v;
  for (int y = 0; y < m.rows; ++y)
    for (int x = 0; x < m.cols * m.channels(); ++x) v.push_back(m.ptr<unsigned char>(y)[x]);
  return v;
}

TEST(Preprocess, BilinearMatchesPillow) {
  EXPECT_EQ(flat(ssseg::resize_bilinear(pattern(5, 7), 3, 4)), kBilinearDown3x4);
  EXPECT_EQ(flat(ssseg::resize_bilinear(pattern(5, 7), 8, 11)), kBilinearUp8x11);
  EXPECT_EQ(flat(ssseg::resize_bilinear(pattern(5, 7), 2, 7)), kBilinearDown2x7);
  const cv::Mat lab2 = pattern2();
  cv::Mat flipped_rows, flipped_cols, img2;
  cv::flip(lab2, flipped_rows, 0);
  cv::flip(lab2, flipped_cols, 1);
  cv::merge(std::vector<cv::Mat>{lab2, flipped_rows, flipped_cols}, img2);
  EXPECT_EQ(flat(ssseg::resize_bilinear(img2, 10, 13)), kBilinearDown10x13);
  EXPECT_EQ(flat(ssseg::resize_bilinear(pattern(5, 7), 5, 7)), flat(pattern(5, 7)));  // same size: unchanged
}

TEST(Preprocess, NearestMatchesPillow) {
  std::vector<cv::Mat> channels;
  cv::split(pattern(5, 7), channels);
  EXPECT_EQ(flat(ssseg::resize_nearest(channels[0], 3, 4)), kNearestDown3x4);
  EXPECT_EQ(flat(ssseg::resize_nearest(channels[0], 9, 13)), kNearestUp9x13);
  EXPECT_EQ(flat(ssseg::resize_nearest(pattern2(), 45, 60)), kNearestUp45x60);
  cv::Mat lab3(64, 64, CV_8UC1);
  for (int i = 0; i < 64 * 64; ++i) lab3.at<unsigned char>(i / 64, i % 64) = static_cast<unsigned char>((i * 7) % 251);
  EXPECT_EQ(flat(ssseg::resize_nearest(lab3, 48, 80)), kNearest64To48x80);
}

TEST(Gate, BelowThresholdBecomesIgnore) {
  cv::Mat labels = (cv::Mat_<unsigned char>(1, 4) << 1, 2, 3, 4);
  cv::Mat conf = (cv::Mat_<float>(1, 4) << 0.2f, 0.7f, 0.69999f, 1.0f);
  EXPECT_EQ(flat(ssseg::gate(labels, conf, ssseg::gate_table(0.7f))), (std::vector<int>{255, 2, 255, 4}));
  EXPECT_EQ(flat(ssseg::confidence_u8(conf)), (std::vector<int>{51, 179, 178, 255}));
  cv::Mat edges = (cv::Mat_<float>(1, 4) << -0.1f, 0.0f, 0.5f / 255.0f, 1.5f);
  EXPECT_EQ(flat(ssseg::confidence_u8(edges)), (std::vector<int>{0, 0, 1, 255}));  // clipped, half rounds up
}

TEST(Gate, PerClassThresholdsAndNeverKeptClasses) {
  // the same case as tests/test_runtime.py::test_per_class_gate_table: class 0 at 0.5, class 1 never kept,
  // class 2 at 0.9; label 7 lies beyond the table; NaN confidence is never kept
  const float nan = std::numeric_limits<float>::quiet_NaN();
  cv::Mat labels = (cv::Mat_<unsigned char>(1, 7) << 0, 0, 1, 2, 2, 7, 0);
  cv::Mat conf = (cv::Mat_<float>(1, 7) << 0.5f, 0.49999f, 1.0f, 0.9f, 0.89999f, 1.0f, nan);
  const auto table = ssseg::gate_table({0.5, std::nullopt, 0.9});
  EXPECT_EQ(flat(ssseg::gate(labels, conf, table)), (std::vector<int>{0, 255, 255, 2, 255, 255, 255}));
}

TEST(Names, SameAsPython) {
  EXPECT_EQ(ssseg::safe_name("../../etc/passwd"), "etc_passwd");
  EXPECT_EQ(ssseg::safe_name(".."), "input");
  EXPECT_EQ(ssseg::safe_name("a b\n c", false), "a-b-c");
  // the values ssseg.label.inputs gives (sha256 of the absolute path / file name, first 8 hex digits)
  EXPECT_EQ(ssseg::assign_keys({"cam", "cam", "job.json", "my_drive", "\u65e5\u672c"},
                               {"/a/cam.mp4", "/b/cam.mp4", "/c/job.json.mp4", "/d/my_drive.mp4", "/e/\u65e5\u672c.mp4"}),
            (std::vector<std::string>{"cam-1a26e17b", "cam-f623813a", "job.json-ee20990b", "my-drive", "input-b5dca8ad"}));
  EXPECT_EQ(ssseg::frame_names({"a", "a", "b c", "x"}, {"a.png", "a.jpg", "b c.png", "x.png"}),
            (std::vector<std::string>{"a-7f071235", "a-509b0d46", "b_c-6e8f199f", "x"}));
  // a resumed job: the recorded source keeps its key, the new one with the same stem is hashed
  EXPECT_EQ(ssseg::assign_keys({"h264", "h264"}, {"/in/h264.mp4", "/in/h264.mkv"}, {{"/in/h264.mp4", "h264"}}),
            (std::vector<std::string>{"h264", "h264-441661a9"}));
}

nlohmann::json valid_model() {
  return nlohmann::json::parse(R"({
    "format": "ssseg.model", "format_version": 1, "ssseg_version": "0.1.0",
    "classes": {"name": "synthetic", "names": ["sky", "road"], "colors": [[1, 2, 3], [4, 5, 6]]},
    "input": {"name": "image", "dtype": "uint8", "layout": "NHWC", "color": "RGB", "height": 64, "width": 48,
              "batch": {"min": 1, "opt": 2, "max": 4}, "resize": "bilinear"},
    "graphs": {"labeler": {"file": "labeler.onnx", "sha256": "00", "inputs": {}, "outputs": {}}},
    "gate": {"available": true, "threshold": 0.7, "ignore_value": 255},
    "engines": []})");
}

TEST(ModelJson, ParsesTheFieldsTheRuntimeUses) {
  const auto m = ssseg::parse_model(valid_model(), "/m", "/m/model.json");
  EXPECT_EQ(m.class_names, (std::vector<std::string>{"sky", "road"}));
  EXPECT_EQ(m.height, 64);
  EXPECT_EQ(m.width, 48);
  EXPECT_EQ(m.batch.opt, 2);
  EXPECT_TRUE(m.gate.available);
  EXPECT_DOUBLE_EQ(*m.gate.threshold, 0.7);
  auto d = valid_model();  // format 2: per-class thresholds, null = never kept
  d["format_version"] = 2;
  d["gate"]["thresholds"] = {0.5, nullptr};
  const auto m2 = ssseg::parse_model(d, "/m", "/m/model.json");
  ASSERT_EQ(m2.gate.thresholds.size(), 2u);
  EXPECT_DOUBLE_EQ(*m2.gate.thresholds[0], 0.5);
  EXPECT_FALSE(m2.gate.thresholds[1].has_value());
  EXPECT_EQ(m2.segmenter, "dsnet-fast-ss");  // files older than the segmenter registry
}

TEST(ModelJson, ReadsTheSegmenterAndRefusesNormalisationOutsideTheGraph) {
  auto d = valid_model();
  d["normalization"] = {{"in_graph", true}, {"scale", 255.0}, {"mean", {0.498, 0.498, 0.498}},
                        {"std", {0.502, 0.502, 0.502}}};
  d["segmenter"] = {{"name", "efficientnet-lite0"}, {"stride", 32}, {"input_multiple", 8}};
  EXPECT_EQ(ssseg::parse_model(d, "/m", "/m/model.json").segmenter, "efficientnet-lite0");
  d["segmenter"]["input_multiple"] = 32;  // 64x48: 48 is no multiple of 32
  EXPECT_THROW(ssseg::parse_model(d, "/m", "/m/model.json"), ssseg::Error);
  d["segmenter"]["input_multiple"] = 8;
  d["normalization"]["in_graph"] = false;
  try {
    ssseg::parse_model(d, "/m", "/m/model.json");
    FAIL() << "normalisation outside the graph was accepted";
  } catch (const ssseg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("normalisation outside the graph"), std::string::npos);
  }
}

TEST(ModelJson, ReducedPrecisionGraphsAreFoundByPrecisionOrNamedWhenMissing) {
  auto d = valid_model();
  d["reduced"] = nlohmann::json::parse(R"([
      {"graph": "labeler", "precision": "int8", "file": "labeler.int8.onnx", "sha256": "x",
       "runtimes": ["tensorrt", "onnxruntime"]},
      {"graph": "labeler", "precision": "int8", "file": "labeler.int8.u8s8.onnx", "sha256": "y",
       "runtimes": ["onnxruntime"]}])");
  const auto m = ssseg::parse_model(d, "/m", "/m/model.json");
  EXPECT_EQ(m.precisions("labeler"), (std::vector<std::string>{"fp32", "int8"}));
  EXPECT_EQ(m.precisions("segmenter"), (std::vector<std::string>{"fp32"}));
  try {
    m.graph("labeler", false, "fp16");
    FAIL() << "found an fp16 graph the model does not list";
  } catch (const ssseg::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("no fp16 labeler graph (has: fp32, int8)"), std::string::npos) << what;
    EXPECT_NE(what.find("--precision fp32,fp16"), std::string::npos) << what;
  }
  try {
    m.graph("labeler", false, "int8");  // listed, but its file is not in /m; ONNX Runtime's form is U8S8
    FAIL() << "accepted a missing file";
  } catch (const ssseg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/m/labeler.int8.u8s8.onnx"), std::string::npos) << e.what();
  }
  d["reduced"][0].erase("sha256");
  EXPECT_THROW(ssseg::parse_model(d, "/m", "/m/model.json"), ssseg::Error);
}

TEST(ModelJson, RefusesForeignOldAndBrokenFilesInOneLine) {
  auto expect_error = [](nlohmann::json d, const std::string& part) {
    try {
      ssseg::parse_model(d, "/m", "/m/model.json");
      FAIL() << "accepted: " << part;
    } catch (const ssseg::Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(part), std::string::npos) << what;
      EXPECT_NE(what.find("/m/model.json"), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  };
  auto d = valid_model();
  d["format"] = "other";
  expect_error(d, "not an ssseg model.json");
  d = valid_model();
  d["format_version"] = 3;
  expect_error(d, "format 3");
  d = valid_model();
  d["gate"]["thresholds"] = {0.5};
  expect_error(d, "one entry per class");
  d = valid_model();
  d["gate"]["thresholds"] = {0.5, 1.5};
  expect_error(d, "numbers in [0, 1] or null");
  d = valid_model();
  d["gate"]["thresholds"] = {0.5, "0.9"};  // a string, named with its key and entry, as ssseg.gate does
  expect_error(d, "gate.thresholds must hold 2 numbers in [0, 1] or null, one per class (entry 1 is \"0.9\")");
  d = valid_model();
  d["gate"]["thresholds"] = {0.5, std::nan("")};
  expect_error(d, "(entry 1 is");
  d = valid_model();
  d["gate"]["threshold"] = 1.5;
  expect_error(d, "gate.threshold must be a number in [0, 1] or null");
  d = valid_model();
  d["gate"]["calibration"] = {{"tables", {{"0.97", {0.5}}}}};
  expect_error(d, "gate.calibration.tables[0.97] must hold one entry per class (2), not 1");
  d = valid_model();
  d["gate"]["threshold"] = nullptr;
  expect_error(d, "gate.threshold or gate.thresholds");
  d = valid_model();
  d["gate"]["calibration"] = {{"tables", {{"0.97", {0.5, nullptr}}}}};
  try {
    ssseg::parse_model(d, "/m", "/m/model.json").gate.table_for(0.99, "/m/model.json");
    FAIL() << "accepted a precision never calibrated";
  } catch (const ssseg::Error& e) {
    EXPECT_NE(std::string(e.what()).find("calibrated: 0.97"), std::string::npos) << e.what();
  }
  d = valid_model();
  d["input"].erase("height");
  expect_error(d, "missing height");
  d = valid_model();
  d["input"]["batch"]["min"] = 3;
  expect_error(d, "batch range");
  d = valid_model();
  d["classes"]["colors"].erase(1);
  expect_error(d, "disagree");
}

TEST(Files, PngHeaderAndAtomicWrite) {
  const auto dir = std::filesystem::temp_directory_path() / ("ssseg_cpp_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  cv::Mat m(3, 5, CV_8UC1, cv::Scalar(7));
  ssseg::atomic_write(dir / "a.png", ssseg::encode_png(m));
  EXPECT_EQ(ssseg::png_size(dir / "a.png"), std::make_pair(3, 5));
  EXPECT_FALSE(ssseg::png_size(dir / "missing.png"));
  std::ofstream(dir / ".b.png.tmp999999999") << "half";  // no such process
  EXPECT_EQ(ssseg::remove_stale_temporaries(dir), 1);
  std::filesystem::remove_all(dir);
}

}  // namespace
