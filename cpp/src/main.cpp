// ssseg-cpp: the C++ runtime's command line. Flags mirror `ssseg label` and `ssseg bench`.

#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "ssseg/error.hpp"
#include "ssseg/label.hpp"

int main(int argc, char** argv) {
  // FFmpeg's and OpenCV's own log lines would bury the one error line; what they report about a source is
  // recorded in its manifest. Set these variables to see them.
  ::setenv("OPENCV_FFMPEG_LOGLEVEL", "-8", 0);  // AV_LOG_QUIET
  ::setenv("OPENCV_LOG_LEVEL", "SILENT", 0);
  CLI::App app{"ssseg-cpp: auto-label footage and benchmark exported ssseg models without Python"};
  app.require_subcommand(1);

  ssseg::LabelOptions label;
  std::optional<int> every;
  auto* lab = app.add_subcommand("label", "Confidence-gated masks per frame, a manifest per source, a job summary");
  lab->add_option("inputs", label.inputs, "Video files, image folders, list files (.txt)")->required();
  lab->add_option("--model", label.model, "Model directory written by ssseg export")->required();
  lab->add_option("--out", label.out, "Output directory")->required();
  lab->add_option("--threshold", label.gate.threshold,
                  "Confidence gate (default: model.json's per-class thresholds, else its threshold)");
  lab->add_option("--target-precision", label.gate.target_precision,
                  "Or the per-class thresholds export calibrated for this precision");
  lab->add_option("--every", every, "Label every K-th frame");
  lab->add_option("--batch", label.batch, "Frames per inference call (default: the model's optimal batch)");
  lab->add_option("--format", label.format, "Output layout (png)");
  lab->add_flag("--confidence", label.gate.confidence, "Also write the confidence map as an 8-bit PNG");
  lab->add_flag("--resume", label.resume, "Continue an interrupted job in --out");
  lab->add_option("--backend", label.backend, "auto, trt[:PRECISION], ort[:PRECISION] or opencv");
  lab->add_option("--threads", label.threads, "CPU threads of the OpenCV backend");
  lab->add_option("--writers", label.writers, "PNG-writing threads");
  lab->add_option("--orientation", label.orientation,
                  "displayed: turn frames as players and viewers do (display matrix, EXIF orientation); stored")
      ->check(CLI::IsMember({"displayed", "stored"}));
  lab->add_flag("--recursive", label.recursive, "Input folders: also label their subfolders and the videos in them");

  ssseg::BenchOptions bench;
  auto* ben = app.add_subcommand("bench", "Frames per second and latency of the labeler on one backend");
  ben->add_option("model", bench.model, "Model directory written by ssseg export")->required();
  ben->add_option("--backend", bench.backend, "auto, trt[:PRECISION], ort[:PRECISION] or opencv");
  ben->add_option("--batch", bench.batch, "Frames per call");
  ben->add_option("--iters", bench.iters, "Timed calls");
  ben->add_option("--warmup", bench.warmup, "Untimed calls before timing");
  ben->add_option("--threads", bench.threads, "CPU threads of the OpenCV backend");
  ben->add_option("--json", bench.json, "Write the result as JSON");

  CLI11_PARSE(app, argc, argv);
  try {
    if (*lab) {
      label.every = every;
      label.command = label.resume_command = "ssseg-cpp";
      for (int i = 1; i < argc; ++i) {
        label.command += std::string(" ") + argv[i];
        if (std::string(argv[i]) != "--resume") label.resume_command += std::string(" ") + argv[i];
      }
      label.resume_command += " --resume";
      return ssseg::run_label(label);
    }
    ssseg::run_bench(bench);
    return 0;
  } catch (const ssseg::Error& e) {
    std::cerr << "error: " << e.what() << std::endl;
  } catch (const std::filesystem::filesystem_error& e) {
    std::cerr << "error: " << ssseg::filesystem_error(e.path1(), e.code()).what() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "error: internal: " << e.what() << std::endl;
  }
  return 1;
}
