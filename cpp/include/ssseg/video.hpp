#pragma once
// Frames of a video file through OpenCV's FFmpeg backend, numbered as `ssseg label` numbers them
// (label/decode.py): constant-rate timestamps give the numbers, so a damaged stretch costs only its own
// frames, a frame handed out late keeps its number, and the numbers a gap took are reported; frames come
// turned by the display matrix when `displayed`.

#include <optional>
#include <string>
#include <vector>

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
  VideoReader(const std::string& path, bool displayed);
  bool opened() const { return cap_.isOpened(); }
  /// The next frame, or nullopt at the end; damage met before it is added to `damage`.
  std::optional<VideoFrame> next(std::vector<VideoDamage>& damage);
  /// Damage still open at the end of the file (call once after the last frame).
  void finish(std::vector<VideoDamage>& damage);
  int decoded() const { return decoded_; }
  /// Degrees counterclockwise the frames were turned by (0 when stored upright or `displayed` is false).
  int rotation() const { return rotation_; }
  /// Why the frames end short of what the file declares (cut short), or empty.
  std::string shortfall() const;

 private:
  void close_damage(std::vector<VideoDamage>& damage);
  cv::Mat turned(const cv::Mat& bgr) const;  // as a viewer shows it (rotation_)

  cv::VideoCapture cap_;
  double fps_ = 0, last_ms_ = 0, origin_ms_ = -1, declared_ = 0;
  int index_ = 0, decoded_ = 0, rotation_ = 0;
  bool grid_ = true;  // every timestamp so far on the frame grid: they number the frames
  int regular_ = 0;   // frames that came one period after the one before
  int since_ = -1, window_ = 0;  // open damage: the frame number it came before, frames until it closes
  std::string reason_;
  std::vector<int> missing_;  // numbers the open damage took (a frame may still come late)
};

}  // namespace ssseg
