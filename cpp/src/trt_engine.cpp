// TensorRT backend: an engine listed in model.json, refused when it was built for another TensorRT version
// or GPU. RAII for runtime -> engine -> context (destroyed in reverse), one CUDA stream, pinned host
// buffers and async copies, named-tensor API (enqueueV3), which TensorRT 8.6 and 10+ share; the version
// differences are selected at compile time from NvInferVersion.h.

#include <cuda_runtime_api.h>

#include <NvInfer.h>
#include <NvInferVersion.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "ssseg/engine.hpp"
#include "ssseg/error.hpp"

#if NV_TENSORRT_MAJOR < 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR < 6)
#error "ssseg-cpp needs TensorRT 8.6 or newer (8.6 is the last release for Pascal, GTX 10-series, cards)"
#endif

#define SSSEG_CUDA_CHECK(call)                                                                              \
  do {                                                                                                      \
    const cudaError_t status_ = (call);                                                                     \
    if (status_ != cudaSuccess)                                                                             \
      throw ::ssseg::Error(std::string(#call) + " failed: " + cudaGetErrorString(status_), std::string(__FILE__) + \
                           ":" + std::to_string(__LINE__));                                                  \
  } while (0)

namespace ssseg {

namespace {

class Logger final : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* msg) noexcept override {
    if (severity <= Severity::kWARNING) std::cerr << "TensorRT: " << msg << std::endl;
  }
};

struct DeviceFree {
  void operator()(void* p) const noexcept { cudaFree(p); }
};
struct HostFree {
  void operator()(void* p) const noexcept { cudaFreeHost(p); }
};
struct StreamDestroy {
  void operator()(cudaStream_t s) const noexcept { cudaStreamDestroy(s); }
};
using DeviceBuffer = std::unique_ptr<void, DeviceFree>;
using HostBuffer = std::unique_ptr<void, HostFree>;

/// "10.13.3" from the library actually loaded (its encoding of the version changed in 10.0).
std::string library_version() {
  const int v = getInferLibVersion();
  const int major = v >= 10000 ? v / 10000 : v / 1000;
  const int minor = v >= 10000 ? (v / 100) % 100 : (v / 100) % 10;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(v % 100);
}

std::string major_minor_patch(const std::string& v) {
  int dots = 0;
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] == '.' && ++dots == 3) return v.substr(0, i);
  return v;
}

struct Binding {
  std::string name;
  size_t element = 1;  // bytes per element
  size_t per_frame = 0;  // elements per frame
  DeviceBuffer device;
  HostBuffer host;
};

class TrtEngine final : public Engine {
 public:
  TrtEngine(const ModelSpec& model, const nlohmann::json& entry) : model_(model), entry_(entry) {
    check_compatible();
    const fs::path plan_path = model.root / entry.at("file").get<std::string>();
    std::ifstream in(plan_path, std::ios::binary);
    if (!in) throw Error("engine file named by model.json is missing", plan_path.string(), "re-run ssseg export --trt");
    const std::string plan((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

    runtime_.reset(nvinfer1::createInferRuntime(logger_));
    if (!runtime_) throw Error("cannot create the TensorRT runtime", plan_path.string());
    engine_.reset(runtime_->deserializeCudaEngine(plan.data(), plan.size()));
    if (!engine_)
      throw Error("TensorRT cannot load this engine (another TensorRT version or GPU?)", plan_path.string(),
                  "rebuild it here: " + entry.value("rebuild", std::string("ssseg export RUN --no-onnx --trt")));
    context_.reset(engine_->createExecutionContext());
    if (!context_) throw Error("cannot create a TensorRT execution context", plan_path.string());
    cudaStream_t s = nullptr;
    SSSEG_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    stream_.reset(s);

    for (int i = 0; i < engine_->getNbIOTensors(); ++i) {
      Binding b;
      b.name = engine_->getIOTensorName(i);
      const auto type = engine_->getTensorDataType(b.name.c_str());
      // ssseg's labeler: image uint8, labels uint8, confidence float32; anything else is another graph.
      const bool expected = (b.name == "confidence" && type == nvinfer1::DataType::kFLOAT) ||
                            ((b.name == "image" || b.name == "labels") && type == nvinfer1::DataType::kUINT8);
      if (!expected)
        throw Error("engine tensor '" + b.name + "' is not the labeler's (image/labels uint8, confidence float32)",
                    plan_path.string(), "build the engine from ssseg's labeler.onnx: ssseg export RUN --trt");
      b.element = type == nvinfer1::DataType::kFLOAT ? 4 : 1;
      b.per_frame = static_cast<size_t>(model.height) * static_cast<size_t>(model.width) * (b.name == "image" ? 3 : 1);
      bindings_.push_back(std::move(b));
    }
  }

  std::vector<Output> infer(const std::vector<cv::Mat>& frames) override {
    const int n = static_cast<int>(frames.size());
    const int max_batch = entry_.at("batch").at("max").get<int>();
    if (n < 1 || n > max_batch)
      throw Error("batch of " + std::to_string(n) + " frames is outside the engine's profile (max " +
                  std::to_string(max_batch) + ")", (model_.root / entry_.at("file").get<std::string>()).string(),
                  "use --batch " + std::to_string(max_batch) + " or less");
    reserve(n);
    Binding& image = binding("image");
    for (int i = 0; i < n; ++i) {
      const cv::Mat& f = frames[i];
      if (f.type() != CV_8UC3 || f.rows != model_.height || f.cols != model_.width || !f.isContinuous())
        throw Error("frame is not a continuous RGB uint8 image at the model's size");
      std::memcpy(static_cast<unsigned char*>(image.host.get()) + i * image.per_frame, f.data, image.per_frame);
    }
    nvinfer1::Dims4 shape{n, model_.height, model_.width, 3};
    if (!context_->setInputShape("image", shape)) throw Error("TensorRT refused the input shape");
    for (auto& b : bindings_) context_->setTensorAddress(b.name.c_str(), b.device.get());
    SSSEG_CUDA_CHECK(cudaMemcpyAsync(image.device.get(), image.host.get(), n * image.per_frame, cudaMemcpyHostToDevice,
                                     stream_.get()));
    if (!context_->enqueueV3(stream_.get())) throw Error("TensorRT inference failed (enqueueV3)");
    for (auto& b : bindings_)
      if (b.name != "image")
        SSSEG_CUDA_CHECK(cudaMemcpyAsync(b.host.get(), b.device.get(), n * b.per_frame * b.element,
                                         cudaMemcpyDeviceToHost, stream_.get()));
    SSSEG_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
    std::vector<Output> out(n);
    for (int i = 0; i < n; ++i) {
      const Binding& labels = binding("labels");
      out[i].labels = cv::Mat(model_.height, model_.width, CV_8UC1,
                              static_cast<unsigned char*>(labels.host.get()) + i * labels.per_frame).clone();
      if (has("confidence")) {
        const Binding& conf = binding("confidence");
        out[i].confidence = cv::Mat(model_.height, model_.width, CV_32FC1,
                                    static_cast<float*>(conf.host.get()) + i * conf.per_frame).clone();
      }
    }
    return out;
  }

  nlohmann::json describe() const override {
    return {{"backend", "trt"}, {"precision", entry_.value("precision", "?")}, {"tensorrt", library_version()},
            {"gpu", gpu_name_}};
  }

 private:
  void check_compatible() {
    int device = 0;
    cudaDeviceProp prop{};
    SSSEG_CUDA_CHECK(cudaGetDevice(&device));
    SSSEG_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    gpu_name_ = prop.name;
    const std::string cc = std::to_string(prop.major) + "." + std::to_string(prop.minor);
    const std::string built_trt = major_minor_patch(entry_.value("tensorrt", std::string("?")));
    const auto& gpu = entry_.value("gpu", nlohmann::json::object());
    const std::string built_cc = gpu.value("compute_capability", std::string("?"));
    std::string why;
    if (built_trt != library_version()) why = "built with TensorRT " + built_trt + ", this is " + library_version();
    else if (built_cc != cc) why = "built for compute capability " + built_cc + " (" + gpu.value("name", std::string("?")) +
                                   "), this GPU is " + cc + " (" + gpu_name_ + ")";
    if (!why.empty())
      throw Error("engine " + why, (model_.root / entry_.at("file").get<std::string>()).string(),
                  "rebuild it on this machine: " + entry_.value("rebuild", std::string("ssseg export RUN --no-onnx --trt")));
  }

  void reserve(int n) {
    if (n <= capacity_) return;
    for (auto& b : bindings_) {
      const size_t bytes = static_cast<size_t>(n) * b.per_frame * b.element;
      void* d = nullptr;
      void* h = nullptr;
      SSSEG_CUDA_CHECK(cudaMalloc(&d, bytes));
      b.device.reset(d);
      SSSEG_CUDA_CHECK(cudaMallocHost(&h, bytes));
      b.host.reset(h);
    }
    capacity_ = n;
  }

  bool has(const std::string& name) const {
    for (const auto& b : bindings_)
      if (b.name == name) return true;
    return false;
  }
  Binding& binding(const std::string& name) {
    for (auto& b : bindings_)
      if (b.name == name) return b;
    throw Error("the engine has no tensor '" + name + "'", (model_.root / entry_.at("file").get<std::string>()).string(),
                "re-export: the labeler engine takes image and gives labels and confidence");
  }

  const ModelSpec& model_;
  nlohmann::json entry_;
  std::string gpu_name_;
  Logger logger_;
  // Declaration order is destruction order reversed: context, then engine, then runtime.
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  std::unique_ptr<CUstream_st, StreamDestroy> stream_;
  std::vector<Binding> bindings_;
  int capacity_ = 0;
};

}  // namespace

std::unique_ptr<Engine> make_trt_engine(const ModelSpec& model, const std::string& precision) {
  const auto entries = model.engines("labeler");
  if (entries.empty())
    throw Error("model.json lists no TensorRT engines", (model.root / "model.json").string(),
                "build them: ssseg export RUN --out " + model.root.string() + " --no-onnx --trt");
  for (const auto& e : entries)
    if (precision.empty() || e.value("precision", "") == precision) return std::make_unique<TrtEngine>(model, e);
  throw Error("no " + precision + " labeler engine in model.json", (model.root / "model.json").string(),
              "pick a precision that was built, or add it with ssseg export --no-onnx --trt --precision " + precision);
}

}  // namespace ssseg
