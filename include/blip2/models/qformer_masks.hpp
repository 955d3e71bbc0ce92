#pragma once
// The Q-Former's self-attention masks for BLIP-2's three pre-training objectives (LAVIS,
// blip2_qformer.py and Qformer.py's get_extended_attention_mask), as additive [B, 1, rows, keys]
// masks of 0 (attend) and -inf (masked). The sequence is Q query tokens followed by L text tokens:
//   unimodal (ITC):           queries see queries, text sees text;
//   bidirectional (ITM):      everything sees everything;
//   multimodal_causal (ITG):  queries see queries; text position t sees every query and text 0..t.
// Padded text keys (text_mask 0) are masked on top in every kind; padded rows still attend.
#include <limits>

#include "../core/tensor.hpp"

namespace blip2 {

enum class QFormerMask { unimodal, bidirectional, multimodal_causal };

// text_mask [B, L] of 1/0. The rows are the Q + L positions, or only the L text positions when
// `text_rows_only` (a text pass whose queries come as a key/value prefix, as LAVIS's ITG pass).
template <class T, class D>
Tensor<T, D> qformer_attention_mask(QFormerMask kind, index_t queries, const Tensor<std::int64_t, D>& text_mask,
                                    bool text_rows_only = false) {
  BLIP2_CHECK(text_mask.dim() == 2 && queries >= 0, ShapeError, "Q-Former mask: text mask ", to_string(text_mask.shape()),
              " must be [batch, text length]");
  const index_t B = text_mask.size(0), L = text_mask.size(1), Q = queries, keys = Q + L;
  const index_t first_row = text_rows_only ? Q : 0, rows = keys - first_row;
  const auto m = text_mask.template to<cpu>().to_vector();
  constexpr T masked = -std::numeric_limits<T>::infinity();
  std::vector<T> out(std::size_t(B * rows * keys), T(0));
  for (index_t b = 0; b < B; ++b)
    for (index_t r = 0; r < rows; ++r) {
      const index_t i = first_row + r;  // position of this row in the Q + L sequence
      const bool query_row = i < Q;
      T* row = out.data() + (b * rows + r) * keys;
      for (index_t j = 0; j < keys; ++j) {
        const bool query_key = j < Q;
        bool see = true;
        if (kind == QFormerMask::unimodal) see = query_row == query_key;
        if (kind == QFormerMask::multimodal_causal) see = query_row ? query_key : (query_key || j <= i);
        if (!query_key && m[std::size_t(b * L + j - Q)] == 0) see = false;
        if (!see) row[j] = masked;
      }
    }
  return Tensor<T, D>::from_vector({B, 1, rows, keys}, out);
}

}  // namespace blip2
