#include "ssseg/files.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>

#include <signal.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <opencv2/imgcodecs.hpp>

#include "ssseg/error.hpp"

namespace ssseg {

fs::path temporary_name(const fs::path& path) {
  return path.parent_path() / ("." + path.filename().string() + ".tmp" + std::to_string(::getpid()));
}

namespace {
template <typename Bytes>
void write_then_rename(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  const fs::path tmp = temporary_name(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      const std::error_code code(errno ? errno : EIO, std::generic_category());
      std::error_code ignored;
      fs::remove(tmp, ignored);  // no half-written temporary left behind
      throw filesystem_error(path, code);
    }
  }
  fs::rename(tmp, path);
}
}  // namespace

void atomic_write(const fs::path& path, const std::vector<unsigned char>& bytes) { write_then_rename(path, bytes); }
void atomic_write(const fs::path& path, const std::string& text) { write_then_rename(path, text); }

std::vector<unsigned char> encode_png(const cv::Mat& image) {
  std::vector<unsigned char> buf;
  if (!cv::imencode(".png", image, buf, {cv::IMWRITE_PNG_COMPRESSION, 1})) throw Error("PNG encoding failed");
  return buf;
}

std::optional<std::pair<int, int>> png_size(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char h[24];
  if (!in.read(reinterpret_cast<char*>(h), sizeof h)) return std::nullopt;
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (std::memcmp(h, sig, 8) != 0 || std::memcmp(h + 12, "IHDR", 4) != 0) return std::nullopt;
  auto be32 = [&](int o) { return (h[o] << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3]; };
  return std::make_pair(be32(20), be32(16));
}

int remove_stale_temporaries(const fs::path& folder, const std::string& prefix) {
  static const std::regex temp(R"(^\.(.+)\.tmp(\d+)$)");
  int removed = 0;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return 0;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (!std::regex_match(name, m, temp) || m[1].str().rfind(prefix, 0) != 0) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(m[2].str()));
    if (pid != ::getpid() && (::kill(pid, 0) == 0 || errno == EPERM)) continue;  // a live process's
    if (fs::remove(entry.path(), ec)) ++removed;
  }
  return removed;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

namespace {

// One EVP context per digest: RAII over OpenSSL's C interface.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void update(const void* data, size_t size) { EVP_DigestUpdate(ctx_.get(), data, size); }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest, &n);
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < n; ++i) {
      out += digits[digest[i] >> 4];
      out += digits[digest[i] & 15];
    }
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

}  // namespace

std::string sha256_hex(const void* data, size_t size) {
  Sha256 h;
  h.update(data, size);
  return h.hex();
}

std::string sha256_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read file", path.string());
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return h.hex();
}

}  // namespace ssseg
