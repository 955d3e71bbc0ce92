#pragma once
// A Hugging Face BLIP-2 model directory: config.json plus safetensors weights (one file or
// sharded). Builds the model the config names and loads its weights.
#include <filesystem>
#include <memory>

#include "../io/checkpoint.hpp"
#include "../models/blip2_opt.hpp"
#include "../models/blip2_retrieval.hpp"
#include "../models/blip2_t5.hpp"

namespace blip2 {

template <class Model>
std::unique_ptr<Model> load_model(const std::string& dir, const Blip2Config& config) {
  auto model = std::make_unique<Model>(config);
  io::load_parameters(*model, io::Checkpoint::open(dir));
  return model;
}

inline Blip2Config load_config(const std::string& dir) {
  const auto path = std::filesystem::path(dir) / "config.json";
  BLIP2_CHECK(std::filesystem::exists(path), IoError, dir, ": no config.json (expected a Hugging Face model directory)");
  return Blip2Config::load(path.string());
}

}  // namespace blip2
