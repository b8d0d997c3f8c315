// CPU backend: labeler.onnx through OpenCV's DNN module, so the C++ pipeline runs (and is tested) on
// machines without a GPU. OpenCV 4.6 (Debian 12) runs this graph one frame at a time (a second batch size
// on the same network fails in its shape inference), so batches are split here.

#include <opencv2/core/utility.hpp>
#include <opencv2/dnn.hpp>

#include "ssseg/engine.hpp"
#include "ssseg/error.hpp"

namespace ssseg {

namespace {

class OpenCvEngine final : public Engine {
 public:
  OpenCvEngine(const ModelSpec& model, int threads) : model_(model), threads_(threads) {
    const fs::path onnx = model.graph("labeler");
    if (threads > 0) cv::setNumThreads(threads);
    try {
      net_ = cv::dnn::readNetFromONNX(onnx.string());
    } catch (const cv::Exception& e) {
      throw Error("OpenCV cannot read this graph (" + first_line(e.what()) + ")", onnx.string(),
                  "re-export with this ssseg version (older exports use an operator OpenCV 4.6 lacks), or build "
                  "with TensorRT");
    }
    net_.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    net_.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    const auto& outputs = model.data.at("graphs").at("labeler").at("outputs");
    with_confidence_ = outputs.contains("confidence");
    names_ = {"labels"};
    if (with_confidence_) names_.push_back("confidence");
  }

  std::vector<Output> infer(const std::vector<cv::Mat>& frames) override {
    std::vector<Output> results;
    for (const cv::Mat& frame : frames) {
      if (frame.type() != CV_8UC3 || frame.rows != model_.height || frame.cols != model_.width || !frame.isContinuous())
        throw Error("frame is not a continuous " + std::to_string(model_.height) + "x" + std::to_string(model_.width) +
                    " RGB uint8 image", "", "resize frames to the model's size first");
      const int shape[] = {1, model_.height, model_.width, 3};
      const cv::Mat blob(4, shape, CV_8U, const_cast<unsigned char*>(frame.ptr<unsigned char>()));
      net_.setInput(blob, "image");
      std::vector<cv::Mat> outs;
      net_.forward(outs, names_);
      Output o;
      // Labels come out of OpenCV as float class ids (exact below 2^24).
      outs[0].reshape(1, model_.height).convertTo(o.labels, CV_8U);
      if (with_confidence_) o.confidence = outs[1].reshape(1, model_.height).clone();
      results.push_back(std::move(o));
    }
    return results;
  }

  nlohmann::json describe() const override {
    return {{"backend", "opencv"}, {"precision", "fp32"}, {"opencv", CV_VERSION}, {"threads", cv::getNumThreads()}};
  }

 private:
  static std::string first_line(const std::string& s) {
    const auto nl = s.find('\n');
    return s.substr(0, std::min<size_t>(nl == std::string::npos ? s.size() : nl, 160));
  }

  const ModelSpec& model_;
  int threads_;
  cv::dnn::Net net_;
  bool with_confidence_ = false;
  std::vector<std::string> names_;
};

}  // namespace

std::unique_ptr<Engine> make_opencv_engine(const ModelSpec& model, int threads) {
  return std::make_unique<OpenCvEngine>(model, threads);
}

}  // namespace ssseg
