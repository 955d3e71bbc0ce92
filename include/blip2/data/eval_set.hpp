#pragma once
// An evaluation split as LAVIS's retrieval and captioning tasks read one (coco_karpathy_val.json,
// coco_karpathy_test.json): images, each with its reference captions. The annotation file is a
// LAVIS one (annotations.hpp); entries naming the same image add their captions to it, in file
// order, so both the one-entry-per-image layout of LAVIS's test files and the one-entry-per-caption
// layout of its training files work. Images are decoded when asked for, with LAVIS's evaluation
// transform (bicubic resize to S x S, CLIP normalisation; no crop, no flip).
#include <string>
#include <unordered_map>
#include <vector>

#include "../image/decode.hpp"
#include "../image/normalize.hpp"
#include "../image/resize.hpp"
#include "annotations.hpp"

namespace blip2::data {

struct EvalImage {
  std::string path;                   // the annotation's "image" under the image root
  std::vector<std::string> captions;  // as written in the file
};

class EvalSet {
 public:
  // Reads `annotation_path` (images relative to `image_root`); max_images > 0 keeps the first
  // max_images images named (an evaluation subset, since every image's features are held at once).
  static EvalSet load(const std::string& annotation_path, const std::string& image_root, std::size_t max_images = 0) {
    EvalSet set;
    set.name_ = annotation_path;
    AnnotationReader reader(annotation_path, image_root);
    std::unordered_map<std::string, std::size_t> index;
    for (CaptionRecord r; reader.next(r);) {
      auto it = index.find(r.image);
      if (it == index.end()) {
        if (max_images > 0 && set.images_.size() == max_images) continue;
        it = index.emplace(r.image, set.images_.size()).first;
        set.images_.push_back({r.image, {}});
      }
      set.images_[it->second].captions.push_back(std::move(r.caption));
    }
    return set;
  }

  std::size_t size() const { return images_.size(); }
  const EvalImage& operator[](std::size_t i) const { return images_.at(i); }
  const std::string& name() const { return name_; }

  // Pixel values [end - begin, 3, S, S] of images [begin, end). An image that cannot be read is an
  // IoError naming it and this set: an evaluation does not skip images.
  Tensor<float> pixel_values(std::size_t begin, std::size_t end, int image_size) const {
    BLIP2_CHECK(begin < end && end <= images_.size(), ValueError, name_, ": images [", begin, ", ", end, ") of ",
                images_.size());
    std::vector<image::Image> batch;
    for (std::size_t i = begin; i < end; ++i) {
      try {
        batch.push_back(image::resize_bicubic(image::load_image(images_[i].path), image_size, image_size));
      } catch (const IoError& e) {
        throw IoError(name_ + ": evaluation image " + std::to_string(i) + ": " + e.what());
      }
    }
    return image::to_pixel_values(batch);
  }

  // Every caption, image after image, and LAVIS's maps between the two: img2txt[i] lists the
  // captions of image i, txt2img[t] is the image of caption t.
  std::vector<std::string> texts() const {
    std::vector<std::string> t;
    for (const auto& im : images_) t.insert(t.end(), im.captions.begin(), im.captions.end());
    return t;
  }
  std::vector<std::vector<std::size_t>> img2txt() const {
    std::vector<std::vector<std::size_t>> m;
    std::size_t t = 0;
    for (const auto& im : images_) {
      m.emplace_back();
      for (std::size_t k = 0; k < im.captions.size(); ++k) m.back().push_back(t++);
    }
    return m;
  }
  std::vector<std::size_t> txt2img() const {
    std::vector<std::size_t> m;
    for (std::size_t i = 0; i < images_.size(); ++i) m.insert(m.end(), images_[i].captions.size(), i);
    return m;
  }

 private:
  std::string name_;
  std::vector<EvalImage> images_;
};

}  // namespace blip2::data
