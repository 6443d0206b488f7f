// Small file helpers shared by the checkpoint readers: existence checks, JSON with named errors.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace la {

bool file_exists(const std::string& path);
bool dir_exists(const std::string& path);
std::string join_path(const std::string& dir, const std::string& name);
// The absolute path with links and "." / ".." resolved (realpath), or `path` itself when it cannot
// be resolved (e.g. it does not exist).
std::string resolved_path(const std::string& path);

// Path of `name` inside checkpoint folder `dir`. A file whose whole content is a relative path to
// another existing file (a symlink flattened by a copy, as in some checkouts) is followed.
// Throws FileNotFound naming the file and folder when it is missing.
std::string checkpoint_file(const std::string& dir, const std::string& name);
// As checkpoint_file, but returns "" when the file is absent.
std::string optional_checkpoint_file(const std::string& dir, const std::string& name);

// Whole file as bytes. Throws FileNotFound / RuntimeError naming the path.
std::string read_file(const std::string& path);

// Parses a JSON file; errors name the file and the parse position.
nlohmann::json read_json_file(const std::string& path);

}  // namespace la
