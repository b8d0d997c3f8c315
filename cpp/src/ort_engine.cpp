// ONNX Runtime backend (built when CMake finds ONNX Runtime's C/C++ API): labeler.onnx (or its fp16 / Q/DQ int8
// form with --backend ort:PRECISION) on the CPU execution
// provider, whole batches per call, one intra-op thread per core by default, full graph optimisation (the
// settings `ssseg bench` found fastest). Written against the C++ API of ORT_API_VERSION 12; the C API is
// ABI-stable, so newer libraries serve it.

#include <onnxruntime_cxx_api.h>

#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "ssseg/engine.hpp"
#include "ssseg/error.hpp"

namespace ssseg {

namespace {

class OrtEngine final : public Engine {
 public:
  OrtEngine(const ModelSpec& model, int threads, std::string precision)
      : model_(model), threads_(threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency())),
        precision_(std::move(precision)), env_(ORT_LOGGING_LEVEL_WARNING, "ssseg") {
    const fs::path onnx = model.graph("labeler", true, precision_);
    Ort::SessionOptions options;
    options.SetIntraOpNumThreads(threads_);
    options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
    try {
      session_ = std::make_unique<Ort::Session>(env_, onnx.c_str(), options);
    } catch (const Ort::Exception& e) {
      throw Error(std::string("ONNX Runtime cannot load this graph (") + e.what() + ")", onnx.string(),
                  "re-run ssseg export");
    }
    with_confidence_ = model.data.at("graphs").at("labeler").at("outputs").contains("confidence");
  }

  std::vector<Output> infer(const std::vector<cv::Mat>& frames) override {
    const int n = static_cast<int>(frames.size());
    const size_t per_frame = static_cast<size_t>(model_.height) * static_cast<size_t>(model_.width);
    input_.resize(static_cast<size_t>(n) * per_frame * 3);
    for (int i = 0; i < n; ++i) {
      const cv::Mat& f = frames[i];
      if (f.type() != CV_8UC3 || f.rows != model_.height || f.cols != model_.width || !f.isContinuous())
        throw Error("frame is not a continuous RGB uint8 image at the model's size");
      std::memcpy(input_.data() + i * per_frame * 3, f.data, per_frame * 3);
    }
    const std::int64_t shape[] = {n, model_.height, model_.width, 3};
    const auto memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    Ort::Value image = Ort::Value::CreateTensor<std::uint8_t>(memory, input_.data(), input_.size(), shape, 4);
    const char* inputs[] = {"image"};
    const char* outputs[] = {"labels", "confidence"};
    std::vector<Ort::Value> out;
    try {
      out = session_->Run(Ort::RunOptions{nullptr}, inputs, &image, 1, outputs, with_confidence_ ? 2 : 1);
    } catch (const Ort::Exception& e) {
      throw Error(std::string("inference failed at batch ") + std::to_string(n) + " (" + e.what() + ")",
                  model_.root.string(), "check model.json's batch range");
    }
    std::vector<Output> results(n);
    const auto* labels = out[0].GetTensorData<std::uint8_t>();
    for (int i = 0; i < n; ++i) {
      results[i].labels = cv::Mat(model_.height, model_.width, CV_8UC1,
                                  const_cast<std::uint8_t*>(labels + i * per_frame)).clone();
      if (with_confidence_)
        results[i].confidence = cv::Mat(model_.height, model_.width, CV_32FC1,
                                        const_cast<float*>(out[1].GetTensorData<float>() + i * per_frame)).clone();
    }
    return results;
  }

  nlohmann::json describe() const override {
    return {{"backend", "ort"}, {"precision", precision_}, {"provider", "CPUExecutionProvider"},
            {"onnxruntime", OrtGetApiBase()->GetVersionString()}, {"threads", threads_}};
  }

 private:
  const ModelSpec& model_;
  int threads_;
  std::string precision_;
  Ort::Env env_;
  std::unique_ptr<Ort::Session> session_;
  std::vector<std::uint8_t> input_;
  bool with_confidence_ = false;
};

}  // namespace

std::unique_ptr<Engine> make_ort_engine(const ModelSpec& model, int threads, const std::string& precision) {
  return std::make_unique<OrtEngine>(model, threads, precision);
}

}  // namespace ssseg
