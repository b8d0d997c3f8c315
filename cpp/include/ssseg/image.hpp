#pragma once
// Pixel operations shared with the Python runtime, bit-exact with it: Pillow's bilinear resize (frames in),
// Pillow's nearest-neighbour resize (masks out) and confidence quantisation (the gate: gate.hpp).

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

/// Confidence in [0, 1] -> 0..255, round half up (floor(255 c + 0.5)), as the Python writer.
cv::Mat confidence_u8(const cv::Mat& confidence);

/// A JPEG's EXIF orientation tag (1..8; 1, upright, when absent or not a JPEG), which OpenCV's imread applies:
/// read here only to record what was applied, as the Python runtime records it.
int exif_orientation(const std::filesystem::path& path);

}  // namespace ssseg
