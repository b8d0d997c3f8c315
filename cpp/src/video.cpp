#include "ssseg/video.hpp"

#include <cmath>
#include <vector>

namespace ssseg {

namespace {
// Frames after damaged data within which a gap in the timestamps counts as frames it took: the decoder hands
// frames out with a delay (reordering), so the gap shows a few frames late (label/decode.py's GAP_WINDOW).
constexpr int kGapWindow = 32;
// Failed reads in a row that mean the end of the file; OpenCV reads on after a damaged packet.
constexpr int kReadsAtEnd = 16;
constexpr const char* kReason = "damaged data: a frame could not be decoded";
}  // namespace

VideoReader::VideoReader(const std::string& path) : cap_(path, cv::CAP_FFMPEG) {
  cap_.set(cv::CAP_PROP_ORIENTATION_AUTO, 0);  // frames as stored, as PyAV and Pillow give them
  fps_ = cap_.get(cv::CAP_PROP_FPS);
}

std::optional<VideoFrame> VideoReader::next(std::vector<VideoDamage>& damage) {
  cv::Mat bgr;
  int failed = 0;
  while (!cap_.read(bgr))
    if (++failed >= kReadsAtEnd) return std::nullopt;
  if (failed > 0 && since_ < 0) since_ = index_;
  if (failed > 0) window_ = kGapWindow;
  double ms = cap_.get(cv::CAP_PROP_POS_MSEC);
  // OpenCV reports 0 for the frames flushed out of the decoder at the end; they follow the last timestamp
  if (decoded_ > 0 && ms <= last_ms_ && fps_ > 0) ms = last_ms_ + 1000.0 / fps_;
  last_ms_ = ms;
  if (since_ >= 0) {
    --window_;
    const int at = fps_ > 0 ? static_cast<int>(std::lround(ms / 1000.0 * fps_)) : -1;
    if (at > index_) {  // the frames the damage took
      damage.push_back({index_, at - 1, kReason, true});
      index_ = at;
      since_ = -1;
    } else if (window_ <= 0) {  // none lost: the decoder concealed it
      damage.push_back({since_, since_, kReason, false});
      since_ = -1;
    }
  }
  ++decoded_;
  return VideoFrame{index_++, ms, bgr};
}

void VideoReader::finish(std::vector<VideoDamage>& damage) {
  if (since_ >= 0) damage.push_back({since_, since_, kReason, false});
  since_ = -1;
}

}  // namespace ssseg
