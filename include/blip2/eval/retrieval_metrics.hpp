#pragma once
// Image-text retrieval recall as LAVIS's RetrievalTask._report_metrics (lavis/tasks/retrieval.py)
// computes it, from score matrices with several texts per image. Recalls here are fractions in
// [0, 1]; LAVIS reports the same numbers times 100.
//
// A query's candidates are ordered as LAVIS's np.argsort(score)[::-1] orders them: by score,
// highest first, and among equal scores the higher index first (the reversed order of a stable
// sort; numpy's default quicksort leaves ties in rows longer than 16 unspecified). Ties matter only
// in LAVIS's -100 fill outside the re-scored top k, which lies beyond rank 10 when k >= 10.
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "../core/error.hpp"

namespace blip2::eval {

struct RetrievalRecall {
  double txt_r1 = 0, txt_r5 = 0, txt_r10 = 0;  // image -> text: an image is a hit when any of its texts is in the top k
  double txt_r_mean = 0;                       // (txt_r1 + txt_r5 + txt_r10) / 3, also LAVIS's agg_metrics
  double img_r1 = 0, img_r5 = 0, img_r10 = 0;  // text -> image
  double img_r_mean = 0;
  double r_mean = 0;                           // (txt_r_mean + img_r_mean) / 2
};

namespace detail {

// Position (0 = first) of column `target` in row `row` of a [rows x cols] row-major matrix ordered
// as described above: the entries scored higher, plus the equal ones at higher columns.
template <class T>
std::size_t rank_in_row(const std::vector<T>& scores, std::size_t row, std::size_t cols, std::size_t target) {
  const T* s = scores.data() + row * cols;
  std::size_t rank = 0;
  for (std::size_t c = 0; c < cols; ++c) rank += s[c] > s[target] || (s[c] == s[target] && c > target);
  return rank;
}

template <class T>
void check_scores(const char* what, const std::vector<T>& scores, std::size_t rows, std::size_t cols) {
  static_assert(std::is_floating_point_v<T>, "retrieval scores must be float or double");
  BLIP2_CHECK(rows > 0 && cols > 0, ValueError, what, ": empty score matrix [", rows, " x ", cols, "]");
  BLIP2_CHECK(scores.size() == rows * cols, ValueError, what, ": ", scores.size(), " scores for a [", rows, " x ",
              cols, "] matrix");
  for (std::size_t i = 0; i < scores.size(); ++i)
    BLIP2_CHECK(!std::isnan(scores[i]), ValueError, what, ": score [", i / cols, ", ", i % cols, "] is NaN");
}

}  // namespace detail

// For each image, the best rank among its texts. scores_i2t: [num_images x num_texts], row-major;
// img2txt[i]: the texts of image i (at least one).
template <class T>
std::vector<std::size_t> image_to_text_ranks(const std::vector<T>& scores_i2t, std::size_t num_images, std::size_t num_texts,
                                             const std::vector<std::vector<std::size_t>>& img2txt) {
  detail::check_scores("image_to_text_ranks", scores_i2t, num_images, num_texts);
  BLIP2_CHECK(img2txt.size() == num_images, ValueError, "image_to_text_ranks: img2txt lists ", img2txt.size(),
              " images, the scores ", num_images);
  std::vector<std::size_t> ranks(num_images);
  for (std::size_t i = 0; i < num_images; ++i) {
    BLIP2_CHECK(!img2txt[i].empty(), ValueError, "image_to_text_ranks: image ", i, " has no texts");
    // The image's text that comes first in the order; its rank is the best.
    const T* s = scores_i2t.data() + i * num_texts;
    std::size_t best = img2txt[i].front();
    for (std::size_t t : img2txt[i]) {
      BLIP2_CHECK(t < num_texts, ValueError, "image_to_text_ranks: text ", t, " of image ", i, " is out of range for ",
                  num_texts, " texts");
      if (s[t] > s[best] || (s[t] == s[best] && t > best)) best = t;
    }
    ranks[i] = detail::rank_in_row(scores_i2t, i, num_texts, best);
  }
  return ranks;
}

// For each text, the rank of its image. scores_t2i: [num_texts x num_images], row-major;
// txt2img[t]: the image of text t.
template <class T>
std::vector<std::size_t> text_to_image_ranks(const std::vector<T>& scores_t2i, std::size_t num_texts, std::size_t num_images,
                                             const std::vector<std::size_t>& txt2img) {
  detail::check_scores("text_to_image_ranks", scores_t2i, num_texts, num_images);
  BLIP2_CHECK(txt2img.size() == num_texts, ValueError, "text_to_image_ranks: txt2img lists ", txt2img.size(),
              " texts, the scores ", num_texts);
  std::vector<std::size_t> ranks(num_texts);
  for (std::size_t t = 0; t < num_texts; ++t) {
    BLIP2_CHECK(txt2img[t] < num_images, ValueError, "text_to_image_ranks: image ", txt2img[t], " of text ", t,
                " is out of range for ", num_images, " images");
    ranks[t] = detail::rank_in_row(scores_t2i, t, num_images, txt2img[t]);
  }
  return ranks;
}

// The fraction of queries whose rank is below k (recall@k).
inline double recall_at(const std::vector<std::size_t>& ranks, std::size_t k) {
  BLIP2_CHECK(!ranks.empty(), ValueError, "recall_at: no ranks");
  std::size_t hits = 0;
  for (std::size_t r : ranks) hits += r < k;
  return double(hits) / double(ranks.size());
}

// LAVIS's metrics from its two matrices: scores_i2t [num_images x num_texts] and scores_t2i
// [num_texts x num_images] (each direction re-scored by ITM separately), both row-major.
template <class T>
RetrievalRecall retrieval_recall(const std::vector<T>& scores_i2t, const std::vector<T>& scores_t2i, std::size_t num_images,
                                 std::size_t num_texts, const std::vector<std::vector<std::size_t>>& img2txt,
                                 const std::vector<std::size_t>& txt2img) {
  const auto i2t = image_to_text_ranks(scores_i2t, num_images, num_texts, img2txt);
  const auto t2i = text_to_image_ranks(scores_t2i, num_texts, num_images, txt2img);
  RetrievalRecall r;
  r.txt_r1 = recall_at(i2t, 1), r.txt_r5 = recall_at(i2t, 5), r.txt_r10 = recall_at(i2t, 10);
  r.img_r1 = recall_at(t2i, 1), r.img_r5 = recall_at(t2i, 5), r.img_r10 = recall_at(t2i, 10);
  r.txt_r_mean = (r.txt_r1 + r.txt_r5 + r.txt_r10) / 3;
  r.img_r_mean = (r.img_r1 + r.img_r5 + r.img_r10) / 3;
  r.r_mean = (r.txt_r_mean + r.img_r_mean) / 2;
  return r;
}

// The same from one matrix [num_images x num_texts] (e.g. ITC similarities); text -> image ranks
// read its transpose.
template <class T>
RetrievalRecall retrieval_recall(const std::vector<T>& scores, std::size_t num_images, std::size_t num_texts,
                                 const std::vector<std::vector<std::size_t>>& img2txt, const std::vector<std::size_t>& txt2img) {
  detail::check_scores("retrieval_recall", scores, num_images, num_texts);
  std::vector<T> transposed(scores.size());
  for (std::size_t i = 0; i < num_images; ++i)
    for (std::size_t t = 0; t < num_texts; ++t) transposed[t * num_images + i] = scores[i * num_texts + t];
  return retrieval_recall(scores, transposed, num_images, num_texts, img2txt, txt2img);
}

}  // namespace blip2::eval
