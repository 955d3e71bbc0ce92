#pragma once
// A procedural image-text world small enough to train a tiny BLIP-2 on in minutes: one or two flat
// coloured shapes on a textured grey background, captions from a small grammar with synonyms and
// varied word order, and questions with one-word answers. A scene is a pure function of (seed,
// index), so training and held-out sets are index ranges (held out: from kFirstHeldOutIndex on),
// and caption_matches() parses a generated caption back to tell whether it describes the scene.
//
// Text: lower case, words separated by spaces. Questions end with "?" attached to the last word
// ("what color is the circle?"); GPT-2's pre-tokenizer and BERT's both split it off as a token of
// its own, so vocabulary() lists "?" as a word and words_of() splits text the same way.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../image/image.hpp"

namespace blip2::data {

enum class ObjectShape { circle, square, triangle };
enum class ObjectSize { small, large };
// Where one object is, seen from the other.
enum class Relation { left_of, right_of, above, below };

// The grammar: every word list and template, indexed by the enums above. The first synonym is the
// canonical word (canonical_caption, questions and answers use it).
struct Synonyms {
  std::string_view first, second;  // second empty: no synonym
};
inline constexpr std::array<Synonyms, 3> kShapeWords{{{"circle", "disc"}, {"square", "box"}, {"triangle", ""}}};
inline constexpr std::array<Synonyms, 2> kSizeWords{{{"small", "little"}, {"large", "big"}}};
inline constexpr std::array<std::string_view, 4> kRelationPhrases{"to the left of", "to the right of", "above",
                                                                  "below"};
// The same relations said of an object named before: "a square with a circle to its left".
inline constexpr std::array<std::string_view, 4> kRelationToItPhrases{"to its left", "to its right", "above it",
                                                                      "below it"};
inline constexpr std::array<std::string_view, 2> kCountWords{"one", "two"};
inline constexpr std::string_view kYes = "yes", kNo = "no";

// Captions. {P} and {Q} are noun phrases, {rel} / {rel_it} where P is seen from Q.
inline constexpr std::string_view kNounPhrase = "a {size} {color} {shape}";
inline constexpr std::array<std::string_view, 3> kOneObjectCaptions{"{P}", "there is {P}", "a picture of {P}"};
inline constexpr std::array<std::string_view, 5> kTwoObjectCaptions{"{P} {rel} {Q}", "there is {P} {rel} {Q}",
                                                                    "{P} is {rel} {Q}", "a picture of {P} {rel} {Q}",
                                                                    "{Q} with {P} {rel_it}"};

// Questions. {shape}, {other}: canonical shape words; {color}: a palette name; {rel}: a relation phrase.
inline constexpr std::string_view kAskCount = "how many objects are there?";
inline constexpr std::string_view kAskColor = "what color is the {shape}?";
inline constexpr std::string_view kAskSize = "what size is the {shape}?";
inline constexpr std::string_view kAskShape = "what shape is the {color} object?";
inline constexpr std::string_view kAskExists = "is there a {color} {shape}?";
inline constexpr std::string_view kAskShapeBeside = "what shape is {rel} the {shape}?";
inline constexpr std::string_view kAskColorBeside = "what color is {rel} the {shape}?";
inline constexpr std::string_view kAskRelation = "is the {shape} {rel} the {other}?";
inline constexpr std::array<std::string_view, 8> kQuestionTemplates{
    kAskCount, kAskColor, kAskSize, kAskShape, kAskExists, kAskShapeBeside, kAskColorBeside, kAskRelation};

// The first scene index of the held-out set; training uses indices below it.
inline constexpr std::uint64_t kFirstHeldOutIndex = 1'000'000;

struct PaletteColor {
  std::string name;  // one lower-case word
  std::array<std::uint8_t, 3> rgb;
};
inline std::vector<PaletteColor> default_palette() {
  return {
      {"red", {{220, 40, 40}}}, {"green", {{40, 170, 60}}}, {"blue", {{40, 80, 220}}}, {"yellow", {{235, 205, 30}}}};
}

struct ShapesWorldOptions {
  int image_size = 32;  // square images, at least 24 pixels (two large shapes side by side)
  int max_objects = 2;  // scenes hold 1..max_objects objects; the grammar describes at most two
  std::vector<PaletteColor> palette = default_palette();  // never grey: backgrounds are grey
};

struct Object {
  ObjectShape shape = ObjectShape::circle;
  int color = 0;  // index into the palette
  ObjectSize size = ObjectSize::small;
  int x = 0, y = 0;  // centre pixel: column, row
};

enum class Texture { noise, horizontal_stripes, vertical_stripes, diagonal_stripes };
struct Background {
  Texture texture = Texture::noise;
  int level = 128;    // the grey the texture varies around
  int contrast = 16;  // noise amplitude, or how far stripes lie above and below `level`
  int period = 4;     // stripe width in pixels
  std::uint64_t noise_seed = 0;
};

struct Scene {
  // One or two objects; of two, objects[0] is the left (or upper) one, and their boxes are apart
  // along one axis and within image_size / 8 pixels of each other along the other.
  std::vector<Object> objects;
  Relation relation = Relation::left_of;  // objects[0] seen from objects[1] (two objects only)
  Background background;
};

struct QA {
  std::string question, answer;
};

inline Relation inverse(Relation r) {
  switch (r) {
    case Relation::left_of:
      return Relation::right_of;
    case Relation::right_of:
      return Relation::left_of;
    case Relation::above:
      return Relation::below;
    case Relation::below:
      return Relation::above;
  }
  return r;
}

// The words of `text`: split at white space, with every "?" a word of its own.
inline std::vector<std::string> words_of(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) words.push_back(std::move(word));
    word.clear();
  };
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      flush();
    } else if (c == '?') {
      flush();
      words.emplace_back("?");
    } else {
      word += c;
    }
  }
  flush();
  return words;
}

// Whether a generated answer is `answer`: the same single word, white space around it ignored.
inline bool answer_matches(std::string_view generated, std::string_view answer) {
  const auto words = words_of(generated);
  return words.size() == 1 && words[0] == answer;
}

class ShapesWorld {
 public:
  explicit ShapesWorld(ShapesWorldOptions options = {}, std::uint64_t seed = 0)
      : options_(std::move(options)), seed_(seed) {
    const int s = options_.image_size;
    BLIP2_CHECK(s >= 24, ValueError, "ShapesWorld: image_size ", s, " is below 24 (two large shapes must fit apart)");
    BLIP2_CHECK(options_.max_objects == 1 || options_.max_objects == 2, ValueError, "ShapesWorld: max_objects ",
                options_.max_objects, " (the grammar describes one or two objects)");
    BLIP2_CHECK(!options_.palette.empty(), ValueError, "ShapesWorld: empty palette");
    const auto grammar = grammar_words();
    for (std::size_t i = 0; i < options_.palette.size(); ++i) {
      const PaletteColor& c = options_.palette[i];
      BLIP2_CHECK(
          !c.name.empty() && std::all_of(c.name.begin(), c.name.end(), [](char ch) { return ch >= 'a' && ch <= 'z'; }),
          ValueError, "ShapesWorld: palette name '", c.name, "' is not one lower-case word");
      BLIP2_CHECK(!std::binary_search(grammar.begin(), grammar.end(), c.name), ValueError,
                  "ShapesWorld: palette name '", c.name, "' is already a word of the grammar");
      for (std::size_t j = 0; j < i; ++j)
        BLIP2_CHECK(options_.palette[j].name != c.name, ValueError, "ShapesWorld: palette name '", c.name, "' twice");
      BLIP2_CHECK(!(c.rgb[0] == c.rgb[1] && c.rgb[1] == c.rgb[2]), ValueError, "ShapesWorld: palette colour '", c.name,
                  "' is grey, like the backgrounds");
    }
  }

  const ShapesWorldOptions& options() const { return options_; }
  std::uint64_t seed() const { return seed_; }

  // The scene at `index`: the same for the same (seed, index), whatever was drawn before.
  Scene scene(std::uint64_t index) const {
    const std::uint64_t scene_seed = blip2::detail::splitmix64(seed_ ^ blip2::detail::splitmix64(index));
    Generator g(scene_seed);
    const int s = options_.image_size;
    Scene sc;
    const int n = uniform_int(g, 1, options_.max_objects);
    for (int i = 0; i < n; ++i) {
      Object o;
      o.shape = ObjectShape(uniform_int(g, 0, int(kShapeWords.size()) - 1));
      o.color = uniform_int(g, 0, int(options_.palette.size()) - 1);
      o.size = ObjectSize(uniform_int(g, 0, int(kSizeWords.size()) - 1));
      sc.objects.push_back(o);
    }
    Background& b = sc.background;
    b.texture = Texture(uniform_int(g, 0, 3));
    b.level = uniform_int(g, 90, 190);
    b.contrast = uniform_int(g, 8, 28);
    b.period = uniform_int(g, 2, 5);
    b.noise_seed = blip2::detail::splitmix64(scene_seed + 1);

    if (n == 1) {
      Object& o = sc.objects[0];
      const int r = half_extent(o.size);
      o.x = uniform_int(g, r, s - 1 - r);
      o.y = uniform_int(g, r, s - 1 - r);
      return sc;
    }
    // Along the main axis the boxes are at least one pixel apart; across it the centres differ by
    // at most s / 8, far less than along it, so the relation is never in doubt.
    const bool side_by_side = g.uniform() < 0.5;
    sc.relation = side_by_side ? Relation::left_of : Relation::above;
    Object &first = sc.objects[0], &second = sc.objects[1];
    const int r1 = half_extent(first.size), r2 = half_extent(second.size), gap = r1 + r2 + 2;
    const int p1 = uniform_int(g, r1, s - 1 - r2 - gap);
    const int p2 = uniform_int(g, p1 + gap, s - 1 - r2);
    const int c1 = uniform_int(g, r1, s - 1 - r1);
    const int c2 = uniform_int(g, std::max(c1 - s / 8, r2), std::min(c1 + s / 8, s - 1 - r2));
    (side_by_side ? first.x : first.y) = p1;
    (side_by_side ? first.y : first.x) = c1;
    (side_by_side ? second.x : second.y) = p2;
    (side_by_side ? second.y : second.x) = c2;
    return sc;
  }

  image::Image render(const Scene& scene) const {
    check(scene);
    const int s = options_.image_size;
    const Background& b = scene.background;
    image::Image img(s, s);
    for (int y = 0; y < s; ++y)
      for (int x = 0; x < s; ++x) {
        const double noise =
            2.0 * Generator::uniform(b.noise_seed, std::uint64_t(y) * std::uint64_t(s) + std::uint64_t(x)) - 1.0;
        int v = b.level;
        if (b.texture == Texture::noise) {
          v += int(noise * b.contrast);
        } else {
          const int coord = b.texture == Texture::horizontal_stripes ? y
                            : b.texture == Texture::vertical_stripes ? x
                                                                     : x + y;
          v += ((coord / std::max(b.period, 1)) % 2 ? b.contrast : -b.contrast) + int(noise * 4);
        }
        const auto grey = std::uint8_t(std::clamp(v, 0, 255));
        std::uint8_t* p = img.pixel(x, y);
        p[0] = p[1] = p[2] = grey;
      }
    for (const Object& o : scene.objects) {
      const int r = half_extent(o.size);
      const auto& rgb = options_.palette[std::size_t(o.color)].rgb;
      for (int y = std::max(o.y - r, 0); y <= std::min(o.y + r, s - 1); ++y)
        for (int x = std::max(o.x - r, 0); x <= std::min(o.x + r, s - 1); ++x)
          if (covers(o, x - o.x, y - o.y, r)) std::copy(rgb.begin(), rgb.end(), img.pixel(x, y));
    }
    return img;
  }

  // A caption with a random template, order of mention and synonyms.
  std::string caption(const Scene& scene, Generator& g) const {
    check(scene);
    if (scene.objects.size() == 1) {
      const std::string p = noun_phrase(scene.objects[0], &g);
      return fill(kOneObjectCaptions[std::size_t(uniform_int(g, 0, int(kOneObjectCaptions.size()) - 1))], {{"{P}", p}});
    }
    const bool swap = g.uniform() < 0.5;
    const Object& p = scene.objects[swap ? 1 : 0];
    const Object& q = scene.objects[swap ? 0 : 1];
    const Relation rel = swap ? inverse(scene.relation) : scene.relation;
    const std::string pp = noun_phrase(p, &g), qp = noun_phrase(q, &g);
    const auto tmpl = kTwoObjectCaptions[std::size_t(uniform_int(g, 0, int(kTwoObjectCaptions.size()) - 1))];
    return fill(tmpl, {{"{P}", pp},
                       {"{Q}", qp},
                       {"{rel}", std::string(kRelationPhrases[std::size_t(rel)])},
                       {"{rel_it}", std::string(kRelationToItPhrases[std::size_t(rel)])}});
  }

  // The first template with the first synonyms, the left (or upper) object named first:
  // "a small red circle", "a small red circle to the left of a large blue square".
  std::string canonical_caption(const Scene& scene) const {
    check(scene);
    if (scene.objects.size() == 1)
      return fill(kOneObjectCaptions[0], {{"{P}", noun_phrase(scene.objects[0], nullptr)}});
    return fill(kTwoObjectCaptions[0], {{"{P}", noun_phrase(scene.objects[0], nullptr)},
                                        {"{Q}", noun_phrase(scene.objects[1], nullptr)},
                                        {"{rel}", std::string(kRelationPhrases[std::size_t(scene.relation)])}});
  }

  // Whether `caption` (any template and synonyms of the grammar, any white space) names exactly
  // the scene's objects with their size, color and shape, and for two objects their relation, in
  // either order of mention.
  bool caption_matches(const std::string& caption, const Scene& scene) const {
    check(scene);
    const auto words = words_of(caption);
    auto same = [](const Object& a, const Object& b) {
      return a.shape == b.shape && a.color == b.color && a.size == b.size;
    };
    const auto& objs = scene.objects;
    if (objs.size() == 1) {
      for (std::string_view t : kOneObjectCaptions) {
        ParsedCaption parsed;
        if (match(words_of(t), 0, words, 0, parsed) && same(parsed.p, objs[0])) return true;
      }
      return false;
    }
    for (std::string_view t : kTwoObjectCaptions) {
      ParsedCaption parsed;
      if (!match(words_of(t), 0, words, 0, parsed)) continue;
      if (same(parsed.p, objs[0]) && same(parsed.q, objs[1]) && parsed.relation == scene.relation) return true;
      if (same(parsed.p, objs[1]) && same(parsed.q, objs[0]) && parsed.relation == inverse(scene.relation)) return true;
    }
    return false;
  }

  // Every question the scene answers unambiguously, with its one-word answer: the object count;
  // color and size of each shape that occurs once; shape of each color that occurs once; "is there
  // a <color> <shape>?" for each object (yes) and for a near miss per object (no: another color,
  // another shape); with two different shapes, what is on either side of each, and whether one is
  // on a given side of the other (yes and no in equal numbers).
  std::vector<QA> questions(const Scene& scene) const {
    check(scene);
    const auto& objs = scene.objects;
    std::vector<QA> qs;
    auto add = [&](std::string q, std::string_view a) {
      for (const QA& e : qs)
        if (e.question == q) return;
      qs.push_back({std::move(q), std::string(a)});
    };
    auto present = [&](int color, ObjectShape shape) {
      return std::any_of(objs.begin(), objs.end(),
                         [&](const Object& o) { return o.color == color && o.shape == shape; });
    };
    auto shape_word = [](ObjectShape s) { return std::string(kShapeWords[std::size_t(s)].first); };
    auto color_word = [&](int c) { return options_.palette[std::size_t(c)].name; };
    add(std::string(kAskCount), kCountWords[objs.size() - 1]);
    const int colors = int(options_.palette.size()), shapes = int(kShapeWords.size());
    for (const Object& o : objs) {
      const auto shape_count =
          std::count_if(objs.begin(), objs.end(), [&](const Object& e) { return e.shape == o.shape; });
      const auto color_count =
          std::count_if(objs.begin(), objs.end(), [&](const Object& e) { return e.color == o.color; });
      if (shape_count == 1) {
        add(fill(kAskColor, {{"{shape}", shape_word(o.shape)}}), color_word(o.color));
        add(fill(kAskSize, {{"{shape}", shape_word(o.shape)}}), kSizeWords[std::size_t(o.size)].first);
      }
      if (color_count == 1) add(fill(kAskShape, {{"{color}", color_word(o.color)}}), shape_word(o.shape));
      add(fill(kAskExists, {{"{color}", color_word(o.color)}, {"{shape}", shape_word(o.shape)}}), kYes);
      for (int k = 1; k < colors; ++k) {
        const int c = (o.color + k) % colors;
        if (present(c, o.shape)) continue;
        add(fill(kAskExists, {{"{color}", color_word(c)}, {"{shape}", shape_word(o.shape)}}), kNo);
        break;
      }
      for (int k = 1; k < shapes; ++k) {
        const auto s = ObjectShape((int(o.shape) + k) % shapes);
        if (present(o.color, s)) continue;
        add(fill(kAskExists, {{"{color}", color_word(o.color)}, {"{shape}", shape_word(s)}}), kNo);
        break;
      }
    }
    if (objs.size() == 2 && objs[0].shape != objs[1].shape) {
      const std::string s0 = shape_word(objs[0].shape), s1 = shape_word(objs[1].shape);
      const std::string rel(kRelationPhrases[std::size_t(scene.relation)]);
      const std::string inv(kRelationPhrases[std::size_t(inverse(scene.relation))]);
      add(fill(kAskShapeBeside, {{"{rel}", rel}, {"{shape}", s1}}), s0);
      add(fill(kAskShapeBeside, {{"{rel}", inv}, {"{shape}", s0}}), s1);
      add(fill(kAskColorBeside, {{"{rel}", rel}, {"{shape}", s1}}), color_word(objs[0].color));
      add(fill(kAskColorBeside, {{"{rel}", inv}, {"{shape}", s0}}), color_word(objs[1].color));
      add(fill(kAskRelation, {{"{shape}", s0}, {"{rel}", rel}, {"{other}", s1}}), kYes);
      add(fill(kAskRelation, {{"{shape}", s0}, {"{rel}", inv}, {"{other}", s1}}), kNo);
      add(fill(kAskRelation, {{"{shape}", s1}, {"{rel}", inv}, {"{other}", s0}}), kYes);
      add(fill(kAskRelation, {{"{shape}", s1}, {"{rel}", rel}, {"{other}", s0}}), kNo);
    }
    return qs;
  }

  // One of questions(scene), uniformly.
  QA question(const Scene& scene, Generator& g) const {
    auto qs = questions(scene);
    return std::move(qs[std::size_t(uniform_int(g, 0, int(qs.size()) - 1))]);
  }

  // Every word a caption, question or answer can contain ("?" included), sorted, unique.
  std::vector<std::string> vocabulary() const {
    std::vector<std::string> v = grammar_words();
    for (const PaletteColor& c : options_.palette) v.push_back(c.name);
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  }

 private:
  struct ParsedCaption {
    Object p, q;
    Relation relation = Relation::left_of;
  };


  // Half the side of an object's bounding box.
  int half_extent(ObjectSize size) const {
    return size == ObjectSize::small ? options_.image_size / 8 : options_.image_size * 7 / 32;
  }

  // Whether the pixel at offset (dx, dy) from the centre belongs to the shape. Squares are a pixel
  // smaller than the box so that the three shapes look about as large.
  static bool covers(const Object& o, int dx, int dy, int r) {
    switch (o.shape) {
      case ObjectShape::circle:
        return dx * dx + dy * dy <= r * r + r;
      case ObjectShape::square:
        return std::abs(dx) < r && std::abs(dy) < r;
      case ObjectShape::triangle:
        return dy >= -r && dy <= r && 2 * std::abs(dx) <= dy + r;  // apex up
    }
    return false;
  }

  void check(const Scene& scene) const {
    const std::size_t n = scene.objects.size();
    BLIP2_CHECK(n == 1 || n == 2, ValueError, "ShapesWorld: a scene has one or two objects, got ", n);
    for (const Object& o : scene.objects) {
      BLIP2_CHECK(o.color >= 0 && std::size_t(o.color) < options_.palette.size(), ValueError,
                  "ShapesWorld: object color ", o.color, " is not in the palette of ", options_.palette.size());
      BLIP2_CHECK(int(o.shape) >= 0 && std::size_t(o.shape) < kShapeWords.size() && int(o.size) >= 0 &&
                      std::size_t(o.size) < kSizeWords.size(),
                  ValueError, "ShapesWorld: object shape ", int(o.shape), " or size ", int(o.size), " out of range");
    }
  }

  // `tmpl` with each "{name}" replaced by its value.
  static std::string fill(std::string_view tmpl, const std::vector<std::pair<std::string_view, std::string>>& values) {
    std::string out;
    for (std::size_t i = 0; i < tmpl.size();) {
      const std::size_t open = tmpl.find('{', i);
      if (open == std::string_view::npos) {
        out += tmpl.substr(i);
        break;
      }
      const std::size_t close = tmpl.find('}', open);
      out += tmpl.substr(i, open - i);
      const std::string_view key = tmpl.substr(open, close + 1 - open);
      const auto it = std::find_if(values.begin(), values.end(), [&](const auto& kv) { return kv.first == key; });
      BLIP2_CHECK(it != values.end(), ValueError, "ShapesWorld: template '", tmpl, "' needs ", key);
      out += it->second;
      i = close + 1;
    }
    return out;
  }

  static std::string_view synonym(const Synonyms& s, Generator* g) {
    if (!g || s.second.empty()) return s.first;
    return g->uniform() < 0.5 ? s.first : s.second;
  }

  std::string noun_phrase(const Object& o, Generator* g) const {
    return fill(kNounPhrase, {{"{size}", std::string(synonym(kSizeWords[std::size_t(o.size)], g))},
                              {"{color}", options_.palette[std::size_t(o.color)].name},
                              {"{shape}", std::string(synonym(kShapeWords[std::size_t(o.shape)], g))}});
  }

  // Reads the noun phrase at words[at..]; false when it is not one.
  bool parse_noun_phrase(const std::vector<std::string>& words, std::size_t at, Object& out) const {
    for (const std::string& item : words_of(kNounPhrase)) {
      if (at >= words.size()) return false;
      const std::string& w = words[at++];
      auto in = [&](const Synonyms& s) { return w == s.first || (!s.second.empty() && w == s.second); };
      if (item == "{size}") {
        const auto it = std::find_if(kSizeWords.begin(), kSizeWords.end(), in);
        if (it == kSizeWords.end()) return false;
        out.size = ObjectSize(it - kSizeWords.begin());
      } else if (item == "{shape}") {
        const auto it = std::find_if(kShapeWords.begin(), kShapeWords.end(), in);
        if (it == kShapeWords.end()) return false;
        out.shape = ObjectShape(it - kShapeWords.begin());
      } else if (item == "{color}") {
        const auto& pal = options_.palette;
        const auto it = std::find_if(pal.begin(), pal.end(), [&](const PaletteColor& c) { return c.name == w; });
        if (it == pal.end()) return false;
        out.color = int(it - pal.begin());
      } else if (w != item) {
        return false;
      }
    }
    return true;
  }

  // Matches words[wi..] against the template words items[ii..], filling `out`.
  bool match(const std::vector<std::string>& items, std::size_t ii, const std::vector<std::string>& words,
             std::size_t wi, ParsedCaption& out) const {
    if (ii == items.size()) return wi == words.size();
    const std::string& item = items[ii];
    if (item == "{P}" || item == "{Q}") {
      static const std::size_t np_words = words_of(kNounPhrase).size();
      return parse_noun_phrase(words, wi, item == "{P}" ? out.p : out.q) &&
             match(items, ii + 1, words, wi + np_words, out);
    }
    if (item == "{rel}" || item == "{rel_it}") {
      const auto& phrases = item == "{rel}" ? kRelationPhrases : kRelationToItPhrases;
      for (std::size_t r = 0; r < phrases.size(); ++r) {
        const auto phrase = words_of(phrases[r]);
        if (wi + phrase.size() > words.size() ||
            !std::equal(phrase.begin(), phrase.end(), words.begin() + std::ptrdiff_t(wi)))
          continue;
        out.relation = Relation(r);
        if (match(items, ii + 1, words, wi + phrase.size(), out)) return true;
      }
      return false;
    }
    return wi < words.size() && words[wi] == item && match(items, ii + 1, words, wi + 1, out);
  }

  // Every word of the grammar but the palette names, sorted, unique.
  static std::vector<std::string> grammar_words() {
    std::vector<std::string> v;
    auto add = [&](std::string_view text) {
      for (auto& w : words_of(text))
        if (w.front() != '{') v.push_back(std::move(w));
    };
    add(kNounPhrase);
    for (auto t : kOneObjectCaptions) add(t);
    for (auto t : kTwoObjectCaptions) add(t);
    for (auto t : kQuestionTemplates) add(t);
    for (const auto& s : kShapeWords) add(std::string(s.first) + " " + std::string(s.second));
    for (const auto& s : kSizeWords) add(std::string(s.first) + " " + std::string(s.second));
    for (auto t : kRelationPhrases) add(t);
    for (auto t : kRelationToItPhrases) add(t);
    for (auto t : kCountWords) add(t);
    add(kYes);
    add(kNo);
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  }

  ShapesWorldOptions options_;
  std::uint64_t seed_;
};

}  // namespace blip2::data
