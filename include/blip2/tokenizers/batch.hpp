#pragma once
// Token rows made into model inputs as Hugging Face tokenizers make them: truncation that keeps
// the special tokens around a text, and right padding with an attention mask.
#include <algorithm>
#include <utility>
#include <vector>

#include "../core/tensor.hpp"
#include "tokenizer.hpp"

namespace blip2::tokenizers {

// head + body + tail with `body` cut so that the whole fits max_len (truncation=True keeps the
// special tokens of the head and tail).
inline std::vector<Id> framed(const std::vector<Id>& head, std::vector<Id> body, const std::vector<Id>& tail, long max_len) {
  const long room = std::max(0L, max_len - long(head.size() + tail.size()));
  if (long(body.size()) > room) body.resize(std::size_t(room));
  std::vector<Id> out = head;
  out.insert(out.end(), body.begin(), body.end());
  out.insert(out.end(), tail.begin(), tail.end());
  return out;
}

// Rows right-padded with `pad` to `width` (0: the longest row; a longer row widens it): input ids
// and attention mask, both [rows, width].
inline std::pair<Tensor<std::int64_t>, Tensor<std::int64_t>> pad_right(const std::vector<std::vector<Id>>& rows, Id pad,
                                                                       std::size_t width = 0) {
  for (const auto& r : rows) width = std::max(width, r.size());
  std::vector<std::int64_t> ids(rows.size() * width, pad), mask(rows.size() * width, 0);
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (std::size_t t = 0; t < rows[i].size(); ++t) {
      ids[i * width + t] = rows[i][t];
      mask[i * width + t] = 1;
    }
  const Shape shape{index_t(rows.size()), index_t(width)};
  return {Tensor<std::int64_t>::from_vector(shape, ids), Tensor<std::int64_t>::from_vector(shape, mask)};
}

}  // namespace blip2::tokenizers
