// Test helpers: fixture paths, a small .npz reader (zip central directory + zlib inflate), temp dirs.
#include "test_util.h"

#include <zlib.h>

#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "io/files.h"

namespace la::test {

std::string fixtures_dir() {
  if (const char* env = std::getenv("LA_FIXTURES")) return env;
  return LA_FIXTURES_DIR;
}

std::string fixture(const std::string& relative) { return fixtures_dir() + "/" + relative; }

std::string temp_dir(const std::string& name) {
  const char* base = std::getenv("LA_TEST_TMP");
  std::filesystem::path dir = std::filesystem::path(base ? base : "/tmp/la_test_tmp") / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {
template <typename T>
T read_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename Out>
std::vector<Out> convert(const NpyArray& a) {
  std::vector<Out> out(a.numel());
  const uint8_t* p = a.bytes.data();
  for (int64_t i = 0; i < a.numel(); ++i) {
    if (a.dtype == "<f4") out[i] = static_cast<Out>(read_le<float>(p + 4 * i));
    else if (a.dtype == "<f8") out[i] = static_cast<Out>(read_le<double>(p + 8 * i));
    else if (a.dtype == "<i4") out[i] = static_cast<Out>(read_le<int32_t>(p + 4 * i));
    else if (a.dtype == "<i8") out[i] = static_cast<Out>(read_le<int64_t>(p + 8 * i));
    else if (a.dtype == "|i1") out[i] = static_cast<Out>(static_cast<int8_t>(p[i]));
    else if (a.dtype == "|u1") out[i] = static_cast<Out>(p[i]);
    else if (a.dtype == "|b1") out[i] = static_cast<Out>(p[i]);
    else throw std::runtime_error("unsupported npy dtype " + a.dtype);
  }
  return out;
}

NpyArray parse_npy(const std::string& raw, const std::string& name) {
  const auto* p = reinterpret_cast<const uint8_t*>(raw.data());
  if (raw.size() < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0) throw std::runtime_error("bad npy " + name);
  int major = p[6];
  size_t header_len = major == 1 ? read_le<uint16_t>(p + 8) : read_le<uint32_t>(p + 8);
  size_t header_start = major == 1 ? 10 : 12;
  std::string header = raw.substr(header_start, header_len);
  NpyArray a;
  auto descr_pos = header.find("'descr': '");
  a.dtype = header.substr(descr_pos + 10, header.find('\'', descr_pos + 10) - descr_pos - 10);
  const bool fortran = header.find("'fortran_order': True") != std::string::npos;
  auto shape_pos = header.find("'shape': (");
  std::string shape = header.substr(shape_pos + 10, header.find(')', shape_pos) - shape_pos - 10);
  size_t i = 0;
  while (i < shape.size()) {
    while (i < shape.size() && (shape[i] == ' ' || shape[i] == ',')) ++i;
    if (i >= shape.size()) break;
    a.shape.push_back(std::strtoll(shape.c_str() + i, nullptr, 10));
    while (i < shape.size() && shape[i] != ',') ++i;
  }
  a.bytes.assign(p + header_start + header_len, p + raw.size());
  if (fortran && a.shape.size() > 1) {
    // Column-major on disk: reorder into row-major.
    const size_t es = a.bytes.size() / static_cast<size_t>(std::max<int64_t>(a.numel(), 1));
    std::vector<uint8_t> c(a.bytes.size());
    const size_t nd = a.shape.size();
    std::vector<int64_t> idx(nd, 0);
    for (int64_t f = 0; f < a.numel(); ++f) {
      // idx is the multi-index of Fortran offset f (first axis fastest).
      int64_t off = 0;
      for (size_t d = 0; d < nd; ++d) off = off * a.shape[d] + idx[d];
      std::memcpy(c.data() + off * es, a.bytes.data() + f * es, es);
      for (size_t d = 0; d < nd; ++d) {
        if (++idx[d] < a.shape[d]) break;
        idx[d] = 0;
      }
    }
    a.bytes.swap(c);
  }
  return a;
}
}  // namespace

std::vector<float> NpyArray::as_float() const { return convert<float>(*this); }
std::vector<int32_t> NpyArray::as_int32() const { return convert<int32_t>(*this); }

std::map<std::string, NpyArray> read_npz(const std::string& path) {
  std::string zip = la::read_file(path);
  const auto* z = reinterpret_cast<const uint8_t*>(zip.data());
  // End of central directory record: last 22+ bytes.
  size_t eocd = std::string::npos;
  for (size_t i = zip.size() >= 22 ? zip.size() - 22 : 0; i + 4 <= zip.size(); --i) {
    if (read_le<uint32_t>(z + i) == 0x06054b50) {
      eocd = i;
      break;
    }
    if (i == 0) break;
  }
  if (eocd == std::string::npos) throw std::runtime_error("not a zip: " + path);
  uint16_t n_entries = read_le<uint16_t>(z + eocd + 10);
  uint32_t cd_offset = read_le<uint32_t>(z + eocd + 16);
  std::map<std::string, NpyArray> out;
  size_t pos = cd_offset;
  for (int e = 0; e < n_entries; ++e) {
    if (read_le<uint32_t>(z + pos) != 0x02014b50) throw std::runtime_error("bad central dir: " + path);
    uint16_t method = read_le<uint16_t>(z + pos + 10);
    uint32_t comp_size = read_le<uint32_t>(z + pos + 20);
    uint32_t size = read_le<uint32_t>(z + pos + 24);
    uint16_t name_len = read_le<uint16_t>(z + pos + 28);
    uint16_t extra_len = read_le<uint16_t>(z + pos + 30);
    uint16_t comment_len = read_le<uint16_t>(z + pos + 32);
    uint32_t local = read_le<uint32_t>(z + pos + 42);
    std::string name(zip.data() + pos + 46, name_len);
    pos += 46 + name_len + extra_len + comment_len;
    uint16_t l_name = read_le<uint16_t>(z + local + 26);
    uint16_t l_extra = read_le<uint16_t>(z + local + 28);
    const uint8_t* data = z + local + 30 + l_name + l_extra;
    std::string raw;
    if (method == 0) {
      raw.assign(reinterpret_cast<const char*>(data), size);
    } else if (method == 8) {
      raw.resize(size);
      z_stream s{};
      inflateInit2(&s, -MAX_WBITS);
      s.next_in = const_cast<uint8_t*>(data);
      s.avail_in = comp_size;
      s.next_out = reinterpret_cast<uint8_t*>(raw.data());
      s.avail_out = size;
      int rc = inflate(&s, Z_FINISH);
      inflateEnd(&s);
      if (rc != Z_STREAM_END) throw std::runtime_error("inflate failed: " + name);
    } else {
      throw std::runtime_error("unsupported zip method in " + path);
    }
    if (name.size() > 4 && name.substr(name.size() - 4) == ".npy") name = name.substr(0, name.size() - 4);
    out[name] = parse_npy(raw, name);
  }
  return out;
}

}  // namespace la::test
