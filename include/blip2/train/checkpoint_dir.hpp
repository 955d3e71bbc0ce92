#pragma once
// Training checkpoints as directories written atomically: everything goes into a hidden temporary
// directory whose files are flushed to disk, which is then renamed into place, and only then does
// the "latest" pointer (itself replaced by rename) name it. A crash or a full disk mid-write leaves
// the previous checkpoint and pointer as they were; a half-written directory is never read.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "../core/error.hpp"

namespace blip2 {

// Flushes a written file (or directory) to the device; IoError naming it on failure.
inline void sync_path(const std::filesystem::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY);
  BLIP2_CHECK(fd >= 0, IoError, p.string(), ": cannot open to flush");
  const int rc = ::fsync(fd);
  ::close(fd);
  BLIP2_CHECK(rc == 0, IoError, p.string(), ": flushing to disk failed");
}

// Writes text to `path` through a temporary file and a rename.
inline void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    BLIP2_CHECK(out.good(), IoError, tmp.string(), ": cannot open for writing");
    out << text;
    out.flush();
    BLIP2_CHECK(out.good(), IoError, tmp.string(), ": write failed (disk full?)");
  }
  sync_path(tmp);
  std::filesystem::rename(tmp, path);
}

// Creates the directory `dir` by calling fill(tmp) on a temporary directory beside it, flushing
// every file written there and renaming it into place (replacing an older `dir`): `dir` is
// complete or absent. On failure the temporary directory is removed and the error rethrown.
inline void write_dir_atomically(const std::filesystem::path& dir,
                                 const std::function<void(const std::filesystem::path&)>& fill) {
  const std::filesystem::path tmp = dir.parent_path() / ("." + dir.filename().string() + ".tmp");
  std::error_code ec;
  std::filesystem::remove_all(tmp, ec);
  try {
    std::filesystem::create_directories(tmp);
    fill(tmp);
    for (const auto& e : std::filesystem::directory_iterator(tmp)) sync_path(e.path());
    sync_path(tmp);
    std::filesystem::remove_all(dir, ec);
    std::filesystem::rename(tmp, dir);
  } catch (...) {
    std::filesystem::remove_all(tmp, ec);
    throw;
  }
}

// Creates `root/name` with write_dir_atomically and then points root/latest at it. On any failure
// the error is rethrown as an IoError; root/latest and older checkpoints are untouched.
inline std::filesystem::path write_checkpoint_dir(const std::filesystem::path& root, const std::string& name,
                                                  const std::function<void(const std::filesystem::path&)>& fill) {
  std::filesystem::create_directories(root);
  const std::filesystem::path final_dir = root / name;
  try {
    write_dir_atomically(final_dir, fill);
    sync_path(root);
    write_file_atomically(root / "latest", name + "\n");
  } catch (const std::exception& e) {
    std::error_code ec;
    std::filesystem::remove(root / "latest.tmp", ec);
    throw IoError(final_dir.string() + ": checkpoint not written (" + e.what() + "); the previous one is kept");
  }
  return final_dir;
}

// The checkpoint directory a --resume argument names: a checkpoint itself, or a run's output
// directory whose "latest" file names one.
inline std::filesystem::path resolve_checkpoint_dir(const std::filesystem::path& p) {
  BLIP2_CHECK(std::filesystem::is_directory(p), IoError, p.string(), ": no such checkpoint directory");
  if (std::filesystem::exists(p / "trainer_state.json")) return p;
  const std::filesystem::path latest = p / "latest";
  BLIP2_CHECK(std::filesystem::exists(latest), IoError, p.string(), ": neither a checkpoint (trainer_state.json) nor a run directory (latest)");
  std::ifstream in(latest);
  std::string name;
  std::getline(in, name);
  BLIP2_CHECK(!name.empty() && std::filesystem::exists(p / name / "trainer_state.json"), IoError, latest.string(), ": names '", name,
              "', which is not a complete checkpoint");
  return p / name;
}

}  // namespace blip2
