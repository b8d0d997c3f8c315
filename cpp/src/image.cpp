#include "ssseg/image.hpp"

#include <limits>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <vector>

#include "ssseg/error.hpp"

namespace ssseg {

namespace {

// Pillow's Resample.c, 8-bit path: coefficients in fixed point with this many fractional bits.
constexpr int kPrecisionBits = 32 - 8 - 2;

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // per output pixel: first input pixel, count
  std::vector<std::int32_t> k;
};

double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter (support 1).
Coeffs precompute(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(2 * static_cast<size_t>(out_size));
  c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = triangle((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      const double scaled = v * (1 << kPrecisionBits);
      c.k[static_cast<size_t>(xx) * c.ksize + x] = static_cast<std::int32_t>(v < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    c.bounds[2 * xx] = xmin;
    c.bounds[2 * xx + 1] = xmax;
  }
  return c;
}

inline std::uint8_t clip8(std::int64_t v) {
  v >>= kPrecisionBits;
  return static_cast<std::uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

}  // namespace

cv::Mat resize_bilinear(const cv::Mat& src, int h, int w) {
  if (src.type() != CV_8UC3) throw Error("resize_bilinear takes 8-bit 3-channel frames");
  if (src.rows == h && src.cols == w) return src.clone();
  const int channels = 3;
  const Coeffs ch = precompute(src.cols, w);
  const Coeffs cv_ = precompute(src.rows, h);
  // Horizontal pass over the rows the vertical pass uses, as Pillow does (it matters only for its speed).
  const int first = cv_.bounds[0];
  const int last = cv_.bounds[2 * (h - 1)] + cv_.bounds[2 * (h - 1) + 1];
  cv::Mat tmp(last - first, w, CV_8UC3);
  for (int y = 0; y < tmp.rows; ++y) {
    const std::uint8_t* in = src.ptr<std::uint8_t>(y + first);
    std::uint8_t* out = tmp.ptr<std::uint8_t>(y);
    for (int xx = 0; xx < w; ++xx) {
      const int xmin = ch.bounds[2 * xx], n = ch.bounds[2 * xx + 1];
      const std::int32_t* k = &ch.k[static_cast<size_t>(xx) * ch.ksize];
      for (int c = 0; c < channels; ++c) {
        std::int64_t ss = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < n; ++x) ss += static_cast<std::int64_t>(in[(x + xmin) * channels + c]) * k[x];
        out[xx * channels + c] = clip8(ss);
      }
    }
  }
  cv::Mat dst(h, w, CV_8UC3);
  for (int yy = 0; yy < h; ++yy) {
    const int ymin = cv_.bounds[2 * yy] - first, n = cv_.bounds[2 * yy + 1];
    const std::int32_t* k = &cv_.k[static_cast<size_t>(yy) * cv_.ksize];
    std::uint8_t* out = dst.ptr<std::uint8_t>(yy);
    for (int xx = 0; xx < w * channels; ++xx) {
      std::int64_t ss = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < n; ++y) ss += static_cast<std::int64_t>(tmp.ptr<std::uint8_t>(y + ymin)[xx]) * k[y];
      out[xx] = clip8(ss);
    }
  }
  return dst;
}

cv::Mat resize_nearest(const cv::Mat& src, int h, int w) {
  if (src.type() != CV_8UC1) throw Error("resize_nearest takes single-channel 8-bit images");
  if (src.rows == h && src.cols == w) return src.clone();
  // Pillow's affine nearest-neighbour resample: source positions at pixel centres, accumulated step by step
  // in double (x += scale), which differs from (x + 0.5) * scale in the last bit for scales like 64/48.
  const double ax = static_cast<double>(src.cols) / w, ay = static_cast<double>(src.rows) / h;
  std::vector<int> xin(w);
  double xo = ax * 0.5;
  for (int x = 0; x < w; ++x, xo += ax) xin[x] = std::min(static_cast<int>(xo), src.cols - 1);
  cv::Mat dst(h, w, CV_8UC1);
  double yo = ay * 0.5;
  for (int y = 0; y < h; ++y, yo += ay) {
    const std::uint8_t* in = src.ptr<std::uint8_t>(std::min(static_cast<int>(yo), src.rows - 1));
    std::uint8_t* out = dst.ptr<std::uint8_t>(y);
    for (int x = 0; x < w; ++x) out[x] = in[xin[x]];
  }
  return dst;
}

cv::Mat confidence_u8(const cv::Mat& confidence) {
  cv::Mat out(confidence.size(), CV_8UC1);
  for (int y = 0; y < confidence.rows; ++y) {
    const float* in = confidence.ptr<float>(y);
    std::uint8_t* o = out.ptr<std::uint8_t>(y);
    for (int x = 0; x < confidence.cols; ++x) {
      const float c = std::clamp(in[x], 0.0f, 1.0f);  // float32 arithmetic, as numpy does it
      o[x] = static_cast<std::uint8_t>(std::floor(c * 255.0f + 0.5f));
    }
  }
  return out;
}

int exif_orientation(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<unsigned char> d(1 << 16);
  in.read(reinterpret_cast<char*>(d.data()), static_cast<std::streamsize>(d.size()));
  d.resize(static_cast<size_t>(in.gcount()));
  auto u16 = [&](size_t at, bool le) -> unsigned {
    return at + 2 > d.size() ? 0u : le ? d[at] | d[at + 1] << 8 : d[at] << 8 | d[at + 1];
  };
  auto u32 = [&](size_t at, bool le) -> size_t { return static_cast<size_t>(u16(at, le)) << (le ? 0 : 16) | u16(at + 2, le) << (le ? 16 : 0); };
  if (d.size() < 4 || d[0] != 0xFF || d[1] != 0xD8) return 1;
  for (size_t at = 2; at + 4 <= d.size() && d[at] == 0xFF;) {  // marker segments up to the image data
    const unsigned marker = d[at + 1], size = u16(at + 2, false);
    if (marker == 0xDA) break;
    const size_t body = at + 4;
    if (marker == 0xE1 && body + 14 <= d.size() && std::equal(d.begin() + body, d.begin() + body + 6, "Exif\0\0")) {
      const size_t tiff = body + 6;
      const bool le = d[tiff] == 'I';
      const size_t ifd = tiff + u32(tiff + 4, le);
      const unsigned entries = u16(ifd, le);
      for (unsigned i = 0; i < entries; ++i) {
        const size_t e = ifd + 2 + 12 * static_cast<size_t>(i);
        if (u16(e, le) == 0x0112) {
          const unsigned tag = u16(e + 8, le);
          return tag >= 1 && tag <= 8 ? static_cast<int>(tag) : 1;
        }
      }
      return 1;
    }
    at += 2 + size;
  }
  return 1;
}

}  // namespace ssseg
