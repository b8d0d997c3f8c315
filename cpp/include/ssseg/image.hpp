#pragma once
// Pixel operations shared with the Python runtime, bit-exact with it: Pillow's bilinear resize (frames in),
// Pillow's nearest-neighbour resize (masks out), the confidence gate and confidence quantisation.

#include <opencv2/core.hpp>

namespace ssseg {

/// HxWx3 uint8 -> h x w x 3 uint8, Pillow's Image.resize(BILINEAR): a triangle filter widened by the scale
/// when shrinking (antialiased), 22-bit fixed-point coefficients, horizontal pass first.
cv::Mat resize_bilinear(const cv::Mat& src, int h, int w);

/// Single-channel uint8 -> h x w, Pillow's Image.resize(NEAREST) (labels are never interpolated).
cv::Mat resize_nearest(const cv::Mat& src, int h, int w);

/// Labels (CV_8U) where confidence (CV_32F) >= threshold, else `ignore`.
cv::Mat gate(const cv::Mat& labels, const cv::Mat& confidence, float threshold, unsigned char ignore = 255);

/// Confidence in [0, 1] -> 0..255, round half up (floor(255 c + 0.5)), as the Python writer.
cv::Mat confidence_u8(const cv::Mat& confidence);

}  // namespace ssseg
