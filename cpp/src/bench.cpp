// `ssseg-cpp bench`: frames per second and latency of one backend on the labeler, like `ssseg bench`'s
// labeler stage: --warmup untimed calls, then --iters timed calls on random frames at the model's size.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>

#include "ssseg/engine.hpp"
#include "ssseg/error.hpp"
#include "ssseg/files.hpp"
#include "ssseg/label.hpp"
#include "ssseg/records.hpp"

namespace ssseg {

void run_bench(const BenchOptions& o) {
  if (o.batch < 1 || o.iters < 1 || o.warmup < 0) throw Error("--batch and --iters must be >= 1, --warmup >= 0");
  const ModelSpec model = read_model(o.model);
  if (o.batch > model.batch.max)
    throw Error("--batch " + std::to_string(o.batch) + " is above the model's maximum batch " +
                std::to_string(model.batch.max), (model.root / "model.json").string(), "use a smaller --batch");
  auto engine = make_engine(o.backend, model, o.threads);
  std::mt19937 rng(0);
  std::vector<cv::Mat> frames;
  for (int i = 0; i < o.batch; ++i) {
    cv::Mat f(model.height, model.width, CV_8UC3);
    cv::randu(f, 0, 256);
    frames.push_back(f);
  }
  for (int i = 0; i < o.warmup; ++i) engine->infer(frames);
  std::vector<double> ms;
  for (int i = 0; i < o.iters; ++i) {
    const auto t = std::chrono::steady_clock::now();
    engine->infer(frames);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
  }
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  auto pct = [&](double p) { return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(sorted.size())))]; };
  const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
  const double fps = 1000.0 * o.batch / mean;
  const ojson info = engine->describe();
  std::printf("%s labeler %dx%d batch %d: %.2f FPS, latency mean %.2f ms, p50 %.2f, p90 %.2f, p99 %.2f (%d iters, %d warm-up)\n",
              info["backend"].get<std::string>().c_str(), model.height, model.width, o.batch, fps, mean, pct(50),
              pct(90), pct(99), o.iters, o.warmup);
  if (!o.json.empty()) {
    ojson out = {{"format", "ssseg.cpp.bench"}, {"format_version", 1}, {"model", o.model.string()},
                 {"segmenter", model.segmenter}, {"backend", info}, {"stage", "labeler"}, {"input", {model.height, model.width}},
                 {"batch", o.batch}, {"iters", o.iters}, {"warmup", o.warmup}, {"fps", fps},
                 {"latency_ms", {{"mean", mean}, {"p50", pct(50)}, {"p90", pct(90)}, {"p99", pct(99)}}}};
    atomic_write(o.json, out.dump(2) + "\n");
  }
}

}  // namespace ssseg
