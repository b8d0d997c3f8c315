#include "ssseg/video.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <opencv2/core/version.hpp>
#include <opencv2/core.hpp>

#include "ssseg/rules.hpp"

namespace ssseg {

namespace {
// Failed reads in a row that mean the end of the file; OpenCV reads on after a damaged packet.
constexpr int kReadsAtEnd = 16;
constexpr const char* kReason = "damaged data: a frame could not be decoded";
// CAP_PROP_ORIENTATION_META's sign by OpenCV version: 4.6 gives the counterclockwise angle (270 for a phone's
// "turn 90 clockwise"), the others the clockwise one (opencv/opencv#22088). Checked on 4.6 by the parity ctest.
constexpr bool kMetaIsCounterclockwise = CV_VERSION_MAJOR == 4 && CV_VERSION_MINOR == 6;
}  // namespace

VideoReader::VideoReader(const std::string& path, bool displayed) : cap_(path, cv::CAP_FFMPEG) {
  // Turned here, not by CAP_PROP_ORIENTATION_AUTO: OpenCV 4.6 reports the display matrix's angle with the
  // wrong sign and so turns frames the wrong way (opencv/opencv#22088), and 4.11 switched auto-rotation off.
  cap_.set(cv::CAP_PROP_ORIENTATION_AUTO, 0);
  fps_ = cap_.get(cv::CAP_PROP_FPS);
  declared_ = cap_.get(cv::CAP_PROP_FRAME_COUNT);  // Matroska: from its duration
  const int meta = (static_cast<int>(std::lround(cap_.get(cv::CAP_PROP_ORIENTATION_META))) % 360 + 360) % 360;
  const int clockwise = kMetaIsCounterclockwise ? (360 - meta) % 360 : meta;
  rotation_ = displayed ? (360 - clockwise) % 360 : 0;  // counterclockwise, as PyAV's and the records' angle
}

cv::Mat VideoReader::turned(const cv::Mat& bgr) const {
  if (rotation_ == 0) return bgr;
  cv::Mat out;
  cv::rotate(bgr, out, rotation_ == 90 ? cv::ROTATE_90_COUNTERCLOCKWISE : rotation_ == 180 ? cv::ROTATE_180
                                                                                        : cv::ROTATE_90_CLOCKWISE);
  return out;
}

std::optional<VideoFrame> VideoReader::next(std::vector<VideoDamage>& damage) {
  cv::Mat bgr;
  while (true) {
    int failed = 0;
    while (!cap_.read(bgr))
      if (++failed >= kReadsAtEnd) return std::nullopt;
    if (failed > 0 && since_ < 0) {
      since_ = index_;
      reason_ = kReason;
    }
    if (failed > 0) window_ = label_rules().gap_window;
    double ms = cap_.get(cv::CAP_PROP_POS_MSEC);
    // OpenCV reports 0 for the frames flushed out of the decoder at the end; they follow the last timestamp
    if (decoded_ > 0 && ms <= last_ms_ && fps_ > 0) ms = last_ms_ + 1000.0 / fps_;
    last_ms_ = ms;
    ++decoded_;
    int number = index_;
    int at = -1;
    if (fps_ > 0) {
      if (origin_ms_ < 0) origin_ms_ = ms;  // frame 0: numbers count from the first frame decoded
      const double pos = (ms - origin_ms_) / 1000.0 * fps_;
      at = static_cast<int>(std::lround(pos));
      grid_ = grid_ && std::abs(pos - at) < label_rules().grid_tolerance;
    } else {
      grid_ = false;
    }
    // going back, or jumping before the rate was seen kept (a time-lapse in a 30 fps container): count frames
    if (grid_ && since_ < 0 && (at < index_ || (at > index_ && regular_ < label_rules().min_regular))) grid_ = false;
    if (grid_ && since_ < 0 && at > index_) {
      since_ = index_;
      reason_ = "frames missing from the stream (timestamps jump to frame " + std::to_string(at) + ")";
      window_ = label_rules().gap_window;
    }
    if (grid_ && at == index_) ++regular_;
    if (since_ >= 0) {
      --window_;
      if (at >= 0 && at < index_) {
        const auto it = std::find(missing_.begin(), missing_.end(), at);
        if (it == missing_.end()) continue;  // a number already given: a repeat the damage produced
        missing_.erase(it);  // thought lost, handed out late
        number = at;
      } else if (at > index_) {
        for (int n = index_; n < at; ++n) missing_.push_back(n);
        number = index_ = at;
      }
      if (window_ <= 0) close_damage(damage);
    }
    index_ = std::max(index_, number + 1);
    return VideoFrame{number, ms, turned(bgr)};
  }
}

void VideoReader::close_damage(std::vector<VideoDamage>& damage) {
  if (missing_.empty()) {
    damage.push_back({since_, since_, reason_, false});  // none lost: the decoder concealed it
  } else {
    int first = missing_[0], prev = missing_[0];
    for (size_t i = 1; i <= missing_.size(); ++i) {
      if (i < missing_.size() && missing_[i] == prev + 1) {
        prev = missing_[i];
        continue;
      }
      damage.push_back({first, prev, reason_, true});
      if (i < missing_.size()) first = prev = missing_[i];
    }
  }
  missing_.clear();
  since_ = -1;
}

void VideoReader::finish(std::vector<VideoDamage>& damage) {
  if (since_ >= 0) close_damage(damage);
}

std::string VideoReader::shortfall() const {
  // as label/decode.py: the last frame ends more than two frame periods before the duration the file declares.
  // OpenCV gives no duration, but its frame count is the container's count or (Matroska) its duration times
  // the rate, so count / rate is the duration either way, for variable rates and time-lapses too.
  // Only for constant-rate timestamps: OpenCV gives the frames flushed at the end no time of their own (they
  // are placed one period after the last), so a time-lapse's end would look early.
  if (declared_ <= 0 || fps_ <= 0 || decoded_ == 0 || !grid_) return "";
  const double period = 1.0 / fps_, declared = declared_ / fps_, end = last_ms_ / 1000.0 + period;
  if (end >= declared - 2 * period) return "";
  char text[160];
  std::snprintf(text, sizeof text, "decoded %.2f s of the %.2f s the file declares (cut short? last frame at %.2f s)",
                end, declared, last_ms_ / 1000.0);
  return text;
}

}  // namespace ssseg
