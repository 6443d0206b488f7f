// File helpers: stat-based checks, whole-file reads and JSON parsing with named errors.
#include "io/files.h"

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace la {

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool dir_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string resolved_path(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : path;
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (!name.empty() && name[0] == '/') return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

namespace {
// Follows a text file whose content is a relative path to another file (at most a few hops).
std::string follow_pointer_file(const std::string& path) {
  std::string current = path;
  for (int hop = 0; hop < 4; ++hop) {
    struct stat st;
    if (::stat(current.c_str(), &st) != 0 || st.st_size == 0 || st.st_size > 1024) return current;
    std::string content = read_file(current);
    while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) content.pop_back();
    // Only a relative path to a sibling location counts (a flattened relative symlink).
    if (content.empty() || content[0] == '/' || content.find('\n') != std::string::npos ||
        content.find('{') != std::string::npos || content.find('#') != std::string::npos)
      return current;
    std::string dir = current.substr(0, current.find_last_of('/') == std::string::npos ? 0 : current.find_last_of('/'));
    std::string target = join_path(dir, content);
    if (!file_exists(target)) return current;
    current = target;
  }
  return current;
}
}  // namespace

std::string optional_checkpoint_file(const std::string& dir, const std::string& name) {
  std::string path = join_path(dir, name);
  if (!file_exists(path)) return "";
  return follow_pointer_file(path);
}

std::string checkpoint_file(const std::string& dir, const std::string& name) {
  std::string path = optional_checkpoint_file(dir, name);
  LA_CHECK(!path.empty(), FileNotFound, "checkpoint file '", name, "' not found in '", dir,
           "'. Point the model path at the folder of a LocateAnything checkpoint (it holds config.json, "
           "the *.safetensors weights and the tokenizer files).");
  return path;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LA_CHECK(file_exists(path), FileNotFound, "file not found: '", path, "'");
    throw RuntimeError(str_cat("cannot open '", path, "': ", std::strerror(errno)));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json read_json_file(const std::string& path) {
  std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // Not only parse_error: a number too large for a double ("1e999") is out_of_range (found by
    // fuzzing; it escaped the error policy as a bare nlohmann exception).
    throw RuntimeError(str_cat("'", path, "' is not valid JSON (", e.what(),
                               "). Re-download this file from the checkpoint."));
  }
}

}  // namespace la
