// `ssseg-cpp label`: the job around the pipeline (pipeline.cpp), as `ssseg label` (label/job.py): options
// checked, inputs expanded and named, the gate chosen, each source's records prepared or resumed under the job's
// lock, the summary written.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>

#include <opencv2/core/utility.hpp>

#include "ssseg/engine.hpp"
#include "ssseg/error.hpp"
#include "ssseg/files.hpp"
#include "ssseg/gate.hpp"
#include "ssseg/inputs.hpp"
#include "ssseg/label.hpp"
#include "ssseg/lock.hpp"
#include "ssseg/pipeline.hpp"
#include "ssseg/records.hpp"

namespace ssseg {

static int label_job(const LabelOptions& options, const ModelSpec& model, const GateChoice& gate, int batch,
              std::vector<SourceInfo>& infos, ojson settings);

int run_label(const LabelOptions& options) {
  const ModelSpec model = read_model(options.model);
  if (options.format != "png")
    throw Error("--format " + options.format + " is not offered by the C++ runtime", "--format",
                "use --format png, or ssseg label for cityscapes/camvid layouts");
  const GateChoice gate = resolve_gate(options.gate, model.gate, (model.root / "model.json").string());
  if (options.every && *options.every < 1) throw Error("--every must be >= 1", "--every");
  if (options.writers < 1) throw Error("--writers must be >= 1", "--writers");
  if (options.batch && *options.batch < 1)
    throw Error("--batch " + std::to_string(*options.batch) + " must be >= 1", "--batch");
  const int batch = options.batch.value_or(model.batch.opt);
  if (batch > model.batch.max)
    throw Error("--batch " + std::to_string(batch) + " is outside the model's batch range 1.." +
                    std::to_string(model.batch.max), (model.root / "model.json").string(),
                "use a smaller --batch, or re-export with a larger --dynamic-batch");

  auto infos = expand_inputs(options.inputs, options.recursive, recorded_keys(options.out));
  for (const auto& info : infos)
    for (const auto& note : info.notes) std::cout << info.input << ": " << note << std::endl;
  ojson settings = {{"model_labeler_sha256", model.graph_sha256("labeler")},
                    {"threshold", gate.settings},
                    {"every", options.every ? ojson(*options.every) : ojson()}, {"fps", nullptr},
                    {"format", options.format}, {"confidence", options.gate.confidence}, {"overlay", false},
                    {"min_coverage", nullptr}, {"orientation", options.orientation}};
  const bool existed = fs::exists(options.out);
  try {
    JobLock lock(options.out);
    return label_job(options, model, gate, batch, infos, settings);
  } catch (...) {
    std::error_code ec;
    if (!existed && fs::is_empty(options.out, ec)) fs::remove(options.out, ec);  // could not start: no trace
    throw;
  }
}

static int label_job(const LabelOptions& options, const ModelSpec& model, const GateChoice& gate, int batch,
              std::vector<SourceInfo>& infos, ojson settings) {
  // the job's locks and the FFmpeg log another runtime's job leaves are not someone else's files
  check_job(options.out, settings, [](const std::string& name) { return is_lock_file(name) || name == "ffmpeg.log"; });
  std::vector<std::unique_ptr<Source>> sources;
  for (auto& info : infos) {
    auto s = std::make_unique<Source>();
    const fs::path meta = options.out / info.key;
    s->records = std::make_unique<SourceRecords>(info, meta, options.out, settings, model.class_names);
    s->records->prepare(options.resume);
    if (options.resume) {
      remove_stale_temporaries(meta);
      remove_stale_temporaries(meta / "labels");
      remove_stale_temporaries(meta / "confidence");
    }
    sources.push_back(std::move(s));
  }
  auto engine = make_engine(options.backend, model, options.threads);
  write_job(options.out, settings);
  const ojson info = engine->describe();
  // Decoding and writing already run beside inference; OpenCV's own thread pool would only compete with
  // the engine's threads for the same cores, unless OpenCV is the engine.
  if (info["backend"] != "opencv") cv::setNumThreads(1);
  std::cout << "labeling " << sources.size() << " source(s) with " << info["backend"].get<std::string>() << ", batch "
            << batch << ", " << gate.describe() << ", format png -> " << options.out.string() << std::endl;

  ojson run = {{"started", now()}, {"backend", info}, {"batch", batch}, {"runtime", "ssseg-cpp"},
               {"command", options.command}, {"model", fs::absolute(options.model).lexically_normal().string()}};
  const auto t0 = std::chrono::steady_clock::now();
  catch_interrupt(true);
  PipelineRun pipeline = run_pipeline(options, model, *engine, gate.table, batch, run, sources);
  catch_interrupt(false);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto& results = pipeline.results;
  std::sort(results.begin(), results.end(), [](const ojson& a, const ojson& b) { return a["key"] < b["key"]; });
  run["finished"] = now();
  run["seconds"] = secs;
  run["frames_labeled"] = pipeline.labeled;
  run["fps"] = secs > 0 ? ojson(pipeline.labeled / secs) : ojson();
  run["interrupted"] = interrupted();
  run["timings"] = {{"infer_s", pipeline.infer_s}, {"wait_frames_s", pipeline.wait_frames_s},
                    {"wait_writers_s", pipeline.wait_writers_s}};
  const ojson report = summary(results, settings, run);
  atomic_write(options.out / kSummaryFile, report.dump(2) + "\n");
  std::printf("%d frames labeled in %.1f s (%.1f frames/s); summary: %s\n", pipeline.labeled, secs,
              run["fps"].is_null() ? 0.0 : run["fps"].get<double>(), (options.out / kSummaryFile).c_str());
  return job_outcome(report, options.out, pipeline.labeled, interrupted(), options.resume_command);
}

}  // namespace ssseg
