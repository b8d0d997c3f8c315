// The label pipeline (pipeline.hpp). Over 300 lines on purpose: one class whose three thread roles (decode,
// infer, write) share its queues, its failure flag and the rule that settles a source; split apart they would
// pass that state around. (The Python twin splits the roles into label/reading.py and label/writing.py,
// where the state is shared by reference anyway.)

#include "ssseg/pipeline.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <exception>
#include <iostream>
#include <map>
#include <thread>
#include <variant>

#include <sys/stat.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "ssseg/bounded_queue.hpp"
#include "ssseg/error.hpp"
#include "ssseg/files.hpp"
#include "ssseg/image.hpp"
#include "ssseg/names.hpp"
#include "ssseg/video.hpp"

namespace ssseg {

namespace {

using Clock = std::chrono::steady_clock;

// Set by the first Ctrl-C (a second one ends the process at once): the job settles and says how to continue.
std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) {
  g_interrupted = true;
  std::signal(SIGINT, SIG_DFL);
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// An image frame's record fields: its file as given, size and modification time, and the EXIF orientation
// applied (label/reading.py frame_origin).
ojson image_origin(const fs::path& path, bool displayed) {
  struct stat st {};
  ojson origin = {{"source", path.string()}};
  if (::stat(path.c_str(), &st) == 0) {
    origin["bytes"] = static_cast<long long>(st.st_size);
    const double mtime = static_cast<double>(st.st_mtim.tv_sec) + static_cast<double>(st.st_mtim.tv_nsec) * 1e-9;
    origin["mtime"] = std::round(mtime * 1000.0) / 1000.0;
  }
  const int tag = displayed ? exif_orientation(path) : 1;
  if (tag != 1) origin["turned"] = "exif " + std::to_string(tag);
  return origin;
}

struct Item {
  Source* source;
  int index;
  std::string name;
  std::optional<double> time;
  int h, w;
  cv::Mat model;  // RGB at the model's size
  ojson origin;   // the frame record's source fields (label/reading.py frame_origin)
};
struct End {
  Source* source;
  std::string error;
};
using Message = std::variant<Item, End>;

struct WriteJob {
  Item item;
  cv::Mat labels;      // gated, model size
  cv::Mat confidence;  // 0..255, model size, or empty
};

class Pipeline {
 public:
  Pipeline(const LabelOptions& options, const ModelSpec& model, Engine& engine, std::optional<GateTable> threshold,
           int batch, ojson run)
      : options_(options), model_(model), engine_(engine), threshold_(threshold), batch_(batch), run_(std::move(run)),
        frames_(2 * static_cast<size_t>(batch)), writes_(4 * static_cast<size_t>(options.writers)) {}

  std::vector<ojson> run(std::vector<std::unique_ptr<Source>>& sources) {
    for (auto& s : sources)
      if (s->records->complete_before()) {
        results_.push_back(s->records->finalize(run_, false));
        std::cout << s->records->source().key << ": complete in an earlier run, skipped" << std::endl;
      }
    std::thread decoder([&] { guard([&] { decode(sources); }); frames_.close(); });
    std::vector<std::thread> writers;
    for (int i = 0; i < options_.writers; ++i) writers.emplace_back([&] { write_loop(); });
    std::vector<Item> pending;
    guard([&] {
      while (true) {
        const auto t = Clock::now();
        auto msg = frames_.pop();
        wait_frames_s += seconds_since(t);
        if (!msg) break;
        if (auto* end = std::get_if<End>(&*msg)) {
          {
            std::lock_guard<std::mutex> lock(end->source->mutex);
            end->source->ended = true;
            if (!end->error.empty()) end->source->records->error = end->error;
          }
          settle(*end->source);
        } else if (failed_) {
          discard(std::get<Item>(*msg));
        } else {
          pending.push_back(std::move(std::get<Item>(*msg)));
          if (static_cast<int>(pending.size()) == batch_) infer(pending);
        }
      }
      if (!pending.empty() && !failed_) infer(pending);
    });
    for (auto& item : pending) discard(item);
    frames_.close();
    decoder.join();
    writes_.close();
    for (auto& w : writers) w.join();
    if (error_) std::rethrow_exception(error_);
    return results_;
  }

  int labeled = 0;
  double infer_s = 0, wait_frames_s = 0, wait_writers_s = 0;

 private:
  template <typename F>
  void guard(F&& f) {
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
      failed_ = true;
      frames_.close();  // unblock the decoder
    }
  }

  void decode(std::vector<std::unique_ptr<Source>>& sources) {
    const int every = options_.every.value_or(1);
    for (auto& s : sources) {
      SourceRecords& rec = *s->records;
      if (rec.complete_before()) continue;
      if (stopping()) return;
      std::string error = rec.error;
      if (error.empty()) {
        rec.open_journal();
        const auto& src = rec.source();
        auto emit = [&](int index, const std::string& name, std::optional<double> time, const cv::Mat& bgr,
                        ojson origin) {
          cv::Mat rgb;
          cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
          Item item{s.get(), index, name, time, rgb.rows, rgb.cols, resize_bilinear(rgb, model_.height, model_.width),
                    std::move(origin)};
          {
            std::lock_guard<std::mutex> lock(s->mutex);
            ++s->outstanding;
          }
          frames_.push(std::move(item));
        };
        if (src.kind == "images") {
          std::vector<std::string> stems, files;
          for (const auto& p : src.images) {
            stems.push_back(p.stem().string());
            files.push_back(p.filename().string());
          }
          const auto names = frame_names(stems, files);
          const bool displayed = options_.orientation == "displayed";
          rec.decoded = static_cast<int>(src.images.size());
          for (size_t i = 0; i < src.images.size() && !stopping(); ++i) {
            const int index = static_cast<int>(i);
            if (index % every) continue;
            ++rec.sampled;
            if (rec.done(index)) continue;
            // OpenCV applies EXIF orientation unless told not to: what a viewer shows, as Pillow's exif_transpose
            const cv::Mat bgr = cv::imread(src.images[i].string(),
                                           displayed ? cv::IMREAD_COLOR : cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
            if (bgr.empty()) {
              rec.record({{"index", index}, {"name", names[i]}, {"error", "cannot decode image"}});
              continue;
            }
            emit(index, names[i], std::nullopt, bgr, image_origin(src.images[i], displayed));
          }
        } else {
          VideoReader video(src.input, options_.orientation == "displayed");
          if (!video.opened()) {
            error = "cannot open (OpenCV's FFmpeg backend could not read it)";
          } else {
            std::vector<VideoDamage> damage;
            while (!stopping()) {
              auto frame = video.next(damage);
              for (const auto& d : damage) rec.record_damage(d.first, d.last, d.reason, d.skipped);
              damage.clear();
              if (!frame) break;
              rec.decoded = video.decoded();
              if (frame->index % every == 0) {
                ++rec.sampled;
                char name[16];
                std::snprintf(name, sizeof name, "%06d", frame->index);
                ojson origin = ojson::object();
                if (video.rotation()) origin["turned"] = "rotate " + std::to_string(video.rotation());
                if (!rec.done(frame->index))
                  emit(frame->index, name, std::round(frame->ms * 1000.0) / 1e6, frame->bgr, std::move(origin));
              }
            }
            video.finish(damage);
            for (const auto& d : damage) rec.record_damage(d.first, d.last, d.reason, d.skipped);
            if (video.decoded() == 0) error = "no frame could be decoded";
            else if (const auto short_by = video.shortfall(); !short_by.empty()) error = short_by;
          }
        }
      }
      frames_.push(End{s.get(), error});
    }
  }

  void infer(std::vector<Item>& pending) {
    std::vector<cv::Mat> frames;
    for (const auto& it : pending) frames.push_back(it.model);
    while (static_cast<int>(frames.size()) < batch_) frames.push_back(frames.back());  // full batches, as Python
    const auto t = Clock::now();
    auto outputs = engine_.infer(frames);
    infer_s += seconds_since(t);
    for (size_t i = 0; i < pending.size(); ++i) {
      WriteJob job{std::move(pending[i]), outputs[i].labels, cv::Mat()};
      if (threshold_) job.labels = gate(outputs[i].labels, outputs[i].confidence, *threshold_);
      if (options_.gate.confidence && !outputs[i].confidence.empty()) job.confidence = confidence_u8(outputs[i].confidence);
      const auto tw = Clock::now();
      writes_.push(std::move(job));
      wait_writers_s += seconds_since(tw);
    }
    pending.clear();
  }

  void write_loop() {
    while (auto job = writes_.pop()) {
      Item& it = job->item;
      // A failure (a full disk) stops the job but not this loop: every job is still settled below, so the
      // main thread never waits on a full queue that nobody drains.
      if (!failed_) guard([&] { write(*job); });
      discard(it);
    }
  }

  void write(WriteJob& job) {
    Item& it = job.item;
    SourceRecords& rec = *it.source->records;
    const cv::Mat full = resize_nearest(job.labels, it.h, it.w);
    std::vector<long long> counts(256, 0);
    for (int y = 0; y < full.rows; ++y) {
      const unsigned char* p = full.ptr<unsigned char>(y);
      for (int x = 0; x < full.cols; ++x) ++counts[p[x]];
    }
    ojson classes = ojson::array();
    long long confident = 0;
    for (size_t c = 0; c < model_.class_names.size(); ++c) {
      classes.push_back(counts[c]);
      confident += counts[c];
    }
    const double coverage = static_cast<double>(confident) / static_cast<double>(full.total());
    const std::string key = rec.source().key;
    std::vector<std::string> files, digests;  // the sha256 of each, which --resume and the report check
    auto put = [&](const std::string& rel, const std::vector<unsigned char>& png) {
      atomic_write(options_.out / rel, png);
      files.push_back(rel);
      digests.push_back(sha256_hex(png.data(), png.size()));
    };
    put(key + "/labels/" + it.name + ".png", encode_png(full));
    if (!job.confidence.empty())
      put(key + "/confidence/" + it.name + ".png", encode_png(resize_nearest(job.confidence, it.h, it.w)));
    ojson r = {{"index", it.index}, {"name", it.name}, {"time", it.time ? ojson(*it.time) : ojson()},
               {"size", {it.h, it.w}}, {"coverage", std::round(coverage * 1e6) / 1e6}, {"classes", classes},
               {"written", true}, {"files", files}, {"sha256", digests}};
    for (const auto& [k, v] : it.origin.items()) r[k] = v;
    rec.record(r);
    std::lock_guard<std::mutex> lock(count_mutex_);
    ++labeled;
  }

  void discard(Item& it) {
    {
      std::lock_guard<std::mutex> lock(it.source->mutex);
      --it.source->outstanding;
    }
    settle(*it.source);
  }

  void settle(Source& s) {
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      if (!s.ended || s.outstanding != 0 || s.finalized) return;
      s.finalized = true;
    }
    guard([&] { finish(s); });  // often in a writer thread: errors reach the caller through error_
  }

  void finish(Source& s) {
    ojson result = s.records->finalize(run_, stopping());
    const auto& totals = result["totals"];
    char cov[32] = "-";
    if (!totals["coverage"].is_null()) std::snprintf(cov, sizeof cov, "%.1f%%", 100 * totals["coverage"].get<double>());
    std::string status = "done";
    if (result["frames_skipped"].get<int>() > 0)
      status += ", " + std::to_string(result["frames_skipped"].get<int>()) + " damaged frame(s) skipped";
    if (!result["errors"].empty()) {
      const auto& e = result["errors"][0];
      status = "FAILED: " + (e.contains("source") ? e["source"].get<std::string>() : "frame " + e["name"].get<std::string>() + ": " + e["error"].get<std::string>());
    } else if (!result["complete"].get<bool>()) {
      status = "stopped";
    }
    {
      std::lock_guard<std::mutex> lock(count_mutex_);
      std::cout << s.records->source().key << ": " << result["frames_written"] << "/" << result["frames_sampled"]
                << " frames written, coverage " << cov << ", " << status << std::endl;
      results_.push_back(std::move(result));
    }
  }

  const LabelOptions& options_;
  const ModelSpec& model_;
  Engine& engine_;
  std::optional<GateTable> threshold_;
  int batch_;
  ojson run_;
  BoundedQueue<Message> frames_;
  BoundedQueue<WriteJob> writes_;
  // a failure stops everything; Ctrl-C (g_interrupted) stops decoding, and what was decoded is still written
  bool stopping() const { return failed_ || g_interrupted; }
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
  std::mutex error_mutex_, count_mutex_;
  std::vector<ojson> results_;
};

}  // namespace

PipelineRun run_pipeline(const LabelOptions& options, const ModelSpec& model, Engine& engine,
                         std::optional<GateTable> threshold, int batch, const ojson& run,
                         std::vector<std::unique_ptr<Source>>& sources) {
  Pipeline pipeline(options, model, engine, threshold, batch, run);
  PipelineRun out;
  out.results = pipeline.run(sources);
  out.labeled = pipeline.labeled;
  out.infer_s = pipeline.infer_s;
  out.wait_frames_s = pipeline.wait_frames_s;
  out.wait_writers_s = pipeline.wait_writers_s;
  return out;
}

bool interrupted() { return g_interrupted; }

void catch_interrupt(bool on) { std::signal(SIGINT, on ? on_interrupt : SIG_DFL); }

}  // namespace ssseg
