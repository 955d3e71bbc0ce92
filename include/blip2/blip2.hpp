#pragma once
// blip2: BLIP-2 vision-language models in header-only C++.
// Include this one header; define BLIP2_CUDA and compile with nvcc for the GPU back end.
// Layers, each including only the ones above it:
#include "version.hpp"
#include "fwd.hpp"
// tensor core
#include "core/error.hpp"
#include "core/dtype.hpp"
#include "core/device.hpp"
#include "core/shape.hpp"
#include "core/random.hpp"
#include "core/storage.hpp"
#include "core/tensor.hpp"
// back ends (CPU always; CUDA when BLIP2_CUDA and nvcc)
#include "backend/backend.hpp"
// autograd
#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "autograd/engine.hpp"
#include "autograd/checkpoint.hpp"
// ops, each written once for every device
#include "ops/convert.hpp"
#include "ops/view.hpp"
#include "ops/elementwise.hpp"
#include "ops/reduce.hpp"
#include "ops/matmul.hpp"
#include "ops/softmax.hpp"
#include "ops/norm.hpp"
#include "ops/index.hpp"
#include "ops/loss.hpp"
#include "ops/dropout.hpp"
#include "ops/attention.hpp"
#include "ops/patch_embed.hpp"
#include "ops/creation.hpp"
// nn building blocks
#include "nn/module.hpp"
#include "nn/linear.hpp"
#include "nn/layer_norm.hpp"
#include "nn/embedding.hpp"
#include "nn/multi_head_attention.hpp"
#include "nn/init.hpp"
// training
#include "train/adamw.hpp"
#include "train/sgd.hpp"
#include "train/schedule.hpp"
#include "train/clip.hpp"
// checkpoints and files
#include "io/safetensors.hpp"
#include "io/checkpoint.hpp"
#include "io/yaml.hpp"
// BLIP-2 models
#include "models/config.hpp"
#include "models/blip2_opt.hpp"
#include "models/blip2_generative.hpp"
#include "models/t5.hpp"
#include "models/blip2_t5.hpp"
#include "models/blip2_retrieval.hpp"
#include "models/qformer_masks.hpp"
#include "models/blip2_stage1.hpp"
// pre-training objectives (stage 1 on the frozen image encoder, stage 2 through the frozen LLM)
#include "train/communicator.hpp"
#include "train/param_groups.hpp"
#include "train/stage1_objectives.hpp"
#include "train/stage2_objectives.hpp"
// the training loop: LAVIS's run config and schedule, atomic checkpoints, resume
#include "train/run_config.hpp"
#include "train/checkpoint_dir.hpp"
#include "train/trainer.hpp"
// tokenizers
#include "tokenizers/tokenizer.hpp"
#include "tokenizers/byte_level_bpe.hpp"
#include "tokenizers/wordpiece.hpp"
#include "tokenizers/sentencepiece.hpp"
#include "tokenizers/load.hpp"
// images
#include "image/image.hpp"
#include "image/decode.hpp"
#include "image/resize.hpp"
#include "image/normalize.hpp"
#include "image/augment.hpp"
// text generation
#include "generate/options.hpp"
#include "generate/logits_processors.hpp"
#include "generate/sampling.hpp"
#include "generate/beam_search.hpp"
#include "generate/generate.hpp"
// pipelines
#include "pipelines/dump.hpp"
#include "pipelines/image_to_text.hpp"
#include "pipelines/presets.hpp"
#include "pipelines/processor.hpp"
#include "pipelines/retrieval.hpp"
