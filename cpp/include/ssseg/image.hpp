#pragma once
// Pixel operations shared with the Python runtime, bit-exact with it: Pillow's bilinear resize (frames in),
// Pillow's nearest-neighbour resize (masks out), the confidence gate and confidence quantisation.

#include <array>
#include <filesystem>
#include <optional>
#include <vector>

#include <opencv2/core.hpp>

namespace ssseg {

/// HxWx3 uint8 -> h x w x 3 uint8, Pillow's Image.resize(BILINEAR): a triangle filter widened by the scale
/// when shrinking (antialiased), 22-bit fixed-point coefficients, horizontal pass first.
cv::Mat resize_bilinear(const cv::Mat& src, int h, int w);

/// Single-channel uint8 -> h x w, Pillow's Image.resize(NEAREST) (labels are never interpolated).
cv::Mat resize_nearest(const cv::Mat& src, int h, int w);

/// A gate as one threshold per label value (+inf: never kept): a single threshold and model.json's per-class
/// table are the same rule.
using GateTable = std::array<float, 256>;
GateTable gate_table(float threshold);
/// Per-class thresholds (unset: never kept); label values beyond the classes are never kept either.
GateTable gate_table(const std::vector<std::optional<double>>& per_class);

/// Labels (CV_8U) where confidence (CV_32F) >= table[label], else `ignore` (NaN confidence: `ignore`, as numpy).
cv::Mat gate(const cv::Mat& labels, const cv::Mat& confidence, const GateTable& table, unsigned char ignore = 255);

/// Confidence in [0, 1] -> 0..255, round half up (floor(255 c + 0.5)), as the Python writer.
cv::Mat confidence_u8(const cv::Mat& confidence);

/// A JPEG's EXIF orientation tag (1..8; 1, upright, when absent or not a JPEG), which OpenCV's imread applies:
/// read here only to record what was applied, as the Python runtime records it.
int exif_orientation(const std::filesystem::path& path);

}  // namespace ssseg
