#pragma once
// One inference interface over the backends (Polygraphy-style runners): frames at the model's size in,
// labels and confidence out. Loading happens on construction; `infer` takes any number of frames.

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "ssseg/model.hpp"

namespace ssseg {

struct Output {
  cv::Mat labels;      // CV_8UC1, model size
  cv::Mat confidence;  // CV_32FC1, model size; empty when the model has no confidence net
};

class Engine {
 public:
  virtual ~Engine() = default;
  /// `frames`: CV_8UC3 RGB at the model's input size.
  virtual std::vector<Output> infer(const std::vector<cv::Mat>& frames) = 0;
  virtual nlohmann::json describe() const = 0;
};

/// "opencv" (labeler.onnx through OpenCV's DNN module, CPU, FP32 only), "ort[:PRECISION]" (labeler.onnx, or
/// the fp16/int8 graph model.json lists, through ONNX Runtime, when built with it), "trt[:PRECISION]" (an
/// engine from model.json) or "auto" (TensorRT when built in and an engine is listed, else ONNX Runtime when
/// built in, else OpenCV).
std::unique_ptr<Engine> make_engine(const std::string& spec, const ModelSpec& model, int threads);

std::unique_ptr<Engine> make_opencv_engine(const ModelSpec& model, int threads);
#ifdef SSSEG_WITH_ONNXRUNTIME
std::unique_ptr<Engine> make_ort_engine(const ModelSpec& model, int threads, const std::string& precision);
#endif
#ifdef SSSEG_WITH_TENSORRT
std::unique_ptr<Engine> make_trt_engine(const ModelSpec& model, const std::string& precision);
#endif

}  // namespace ssseg
