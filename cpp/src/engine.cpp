#include "ssseg/engine.hpp"

#include "ssseg/error.hpp"

namespace ssseg {

std::unique_ptr<Engine> make_engine(const std::string& spec, const ModelSpec& model, int threads) {
  const auto colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const std::string variant = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (name == "opencv") {
    if (!variant.empty() && variant != "fp32")
      throw Error("the OpenCV backend runs the FP32 graph only", "--backend " + spec,
                  "use --backend ort:" + variant + " (ssseg-cpp built with ONNX Runtime) or --backend opencv");
    return make_opencv_engine(model, threads);
  }
  if (name == "ort") {
#ifdef SSSEG_WITH_ONNXRUNTIME
    return make_ort_engine(model, threads, variant.empty() ? "fp32" : variant);
#else
    throw Error("this ssseg-cpp was built without ONNX Runtime", "--backend ort",
                "rebuild with -DONNXRUNTIME_ROOT=<folder with include/onnxruntime_cxx_api.h and lib/libonnxruntime.so>, "
                "or use --backend opencv");
#endif
  }
  if (name == "trt") {
#ifdef SSSEG_WITH_TENSORRT
    return make_trt_engine(model, variant);
#else
    throw Error("this ssseg-cpp was built without TensorRT", "--backend trt",
                "rebuild with -DSSSEG_TENSORRT=ON -DTensorRT_ROOT=<TensorRT folder>, or use --backend opencv");
#endif
  }
  if (name == "auto") {
#ifdef SSSEG_WITH_TENSORRT
    if (!model.engines("labeler").empty()) return make_trt_engine(model, variant);
#endif
#ifdef SSSEG_WITH_ONNXRUNTIME
    return make_ort_engine(model, threads, "fp32");
#else
    return make_opencv_engine(model, threads);
#endif
  }
  throw Error("unknown backend '" + spec + "'", "--backend", "choose auto, trt[:PRECISION], ort[:PRECISION] or opencv");
}

}  // namespace ssseg
