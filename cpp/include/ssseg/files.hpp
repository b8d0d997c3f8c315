#pragma once
// Files that are never half-written: temporary name, then rename.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>

namespace ssseg {

namespace fs = std::filesystem;

/// Where `path` is written before its rename: hidden and naming the process (as ssseg.io does).
fs::path temporary_name(const fs::path& path);
void atomic_write(const fs::path& path, const std::vector<unsigned char>& bytes);
void atomic_write(const fs::path& path, const std::string& text);
/// A single-channel uint8 image as PNG (zlib level 1, as the Python writer).
std::vector<unsigned char> encode_png(const cv::Mat& image);
/// (height, width) from a PNG's header, or nothing when the file is missing or not a PNG.
std::optional<std::pair<int, int>> png_size(const fs::path& path);
/// Delete temporaries of dead processes in `folder` whose final name starts with `prefix`.
int remove_stale_temporaries(const fs::path& folder, const std::string& prefix = "");
std::string read_text(const fs::path& path);
/// The sha256 of bytes / of a file's contents, as lowercase hex (hashlib's hexdigest).
std::string sha256_hex(const void* data, size_t size);
std::string sha256_file(const fs::path& path);

}  // namespace ssseg
