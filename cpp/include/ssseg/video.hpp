#pragma once
// Frames of a video file through OpenCV's FFmpeg backend, numbered as `ssseg label` numbers them
// (label/decode.py): a damaged stretch costs only its own frames, and the frame numbers it took are
// reported, so later frames keep their numbers and both runtimes name them alike.

#include <optional>
#include <string>

#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

namespace ssseg {

struct VideoFrame {
  int index;     // frame number from 0 (a gap after damaged data)
  double ms;     // presentation time
  cv::Mat bgr;
};

/// Damaged data before frames first..last: lost (skipped) or rebuilt by the decoder and labeled.
struct VideoDamage {
  int first, last;
  std::string reason;
  bool skipped;
};

class VideoReader {
 public:
  explicit VideoReader(const std::string& path);
  bool opened() const { return cap_.isOpened(); }
  /// The next frame, or nullopt at the end; damage met before it is added to `damage`.
  std::optional<VideoFrame> next(std::vector<VideoDamage>& damage);
  /// Damage still waiting for a gap at the end of the file (call once after the last frame).
  void finish(std::vector<VideoDamage>& damage);
  int decoded() const { return decoded_; }

 private:
  cv::VideoCapture cap_;
  double fps_ = 0, last_ms_ = 0;
  int index_ = 0, decoded_ = 0;
  int since_ = -1, window_ = 0;  // damage pending: the frame number it came before, frames left to find its gap
};

}  // namespace ssseg
