#pragma once
// The label job's pipeline, overlapped like `ssseg label`'s (label/pipeline.py): a decoder thread turns frames
// into model-size RGB, the calling thread runs batches and gates them at the model's resolution, writer threads
// resize masks back (nearest), count pixels and write PNGs. Queues are bounded.

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "ssseg/engine.hpp"
#include "ssseg/gate.hpp"
#include "ssseg/label_options.hpp"
#include "ssseg/model.hpp"
#include "ssseg/records.hpp"

namespace ssseg {

/// A source of the job as the pipeline tracks it: its records and the frames still in flight.
struct Source {
  std::unique_ptr<SourceRecords> records;
  std::mutex mutex;
  int outstanding = 0;
  bool ended = false, finalized = false;
};

struct PipelineRun {
  std::vector<nlohmann::ordered_json> results;  // each source's finalized record, as records.hpp writes them
  int labeled = 0;
  double infer_s = 0, wait_frames_s = 0, wait_writers_s = 0;
};

/// Label `sources` (gated by `threshold`, unset: ungated) in batches of `batch`; `run` is the summary's run
/// entry each manifest records. Throws the first failure once every source has settled.
PipelineRun run_pipeline(const LabelOptions& options, const ModelSpec& model, Engine& engine,
                         std::optional<GateTable> threshold, int batch, const nlohmann::ordered_json& run,
                         std::vector<std::unique_ptr<Source>>& sources);

/// Set by the first Ctrl-C while `catch_interrupt(true)` is on (a second one ends the process at once):
/// decoding stops, what was decoded is written, and the job says how to continue.
bool interrupted();
void catch_interrupt(bool on);

}  // namespace ssseg
