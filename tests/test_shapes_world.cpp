// The shapes world (data/shapes_world.hpp): scenes reproducible from (seed, index), every attribute
// drawn, rendered pixels, captions that parse back to their scene and no other, correct answers, a
// closed vocabulary; and word-level tokenizer files (tokenizers/word_level_files.hpp) that
// load_tokenizer reads with one token per vocabulary word.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <blip2/data/shapes_world.hpp>
#include <blip2/tokenizers/load.hpp>
#include <blip2/tokenizers/word_level_files.hpp>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using namespace blip2;
using namespace blip2::data;

namespace {

bool same_scene(const Scene& a, const Scene& b) {
  if (a.objects.size() != b.objects.size() || a.relation != b.relation) return false;
  for (std::size_t i = 0; i < a.objects.size(); ++i) {
    const Object &p = a.objects[i], &q = b.objects[i];
    if (p.shape != q.shape || p.color != q.color || p.size != q.size || p.x != q.x || p.y != q.y) return false;
  }
  const Background &p = a.background, &q = b.background;
  return p.texture == q.texture && p.level == q.level && p.contrast == q.contrast && p.period == q.period &&
         p.noise_seed == q.noise_seed;
}

// Where `a` is seen from `b`, from their centres alone.
Relation seen_from(const Object& a, const Object& b) {
  const int dx = a.x - b.x, dy = a.y - b.y;
  if (std::abs(dx) > std::abs(dy)) return dx < 0 ? Relation::left_of : Relation::right_of;
  return dy < 0 ? Relation::above : Relation::below;
}

std::string join(const std::vector<std::string>& words, std::size_t begin, std::size_t end) {
  std::string s;
  for (std::size_t i = begin; i < end; ++i) s += (i > begin ? " " : "") + words[i];
  return s;
}

// The answer to one of the world's questions, worked out from the scene's geometry and attributes
// without the world's question code; "" when the question does not have one unambiguous answer.
std::string expected_answer(const std::string& question, const Scene& scene, const ShapesWorldOptions& o) {
  const auto w = words_of(question);
  const auto& objs = scene.objects;
  const std::size_t n = w.size();
  REQUIRE(n >= 3);
  REQUIRE(w.back() == "?");
  auto shape_of = [](const std::string& word) {
    for (std::size_t i = 0; i < kShapeWords.size(); ++i)
      if (kShapeWords[i].first == word) return int(i);
    return -1;
  };
  auto color_of = [&](const std::string& word) {
    for (std::size_t i = 0; i < o.palette.size(); ++i)
      if (o.palette[i].name == word) return int(i);
    return -1;
  };
  auto relation_of = [](const std::string& phrase) {
    for (std::size_t i = 0; i < kRelationPhrases.size(); ++i)
      if (kRelationPhrases[i] == phrase) return int(i);
    return -1;
  };
  auto only = [&](auto pred) -> const Object* {  // the one object with pred, else null
    const Object* found = nullptr;
    for (const Object& ob : objs)
      if (pred(ob)) {
        if (found) return nullptr;
        found = &ob;
      }
    return found;
  };
  auto with_shape = [&](const std::string& word) {
    const int s = shape_of(word);
    return only([&](const Object& ob) { return int(ob.shape) == s; });
  };
  auto other_than = [&](const Object* ob) { return objs.size() == 2 ? &objs[ob == &objs[0] ? 1 : 0] : nullptr; };
  const std::string head = join(w, 0, 3);
  if (question == "how many objects are there?") return objs.size() == 1 ? "one" : "two";
  if (head == "what color is" && w[3] == "the" && n == 6) {
    const Object* ob = with_shape(w[4]);
    return ob ? o.palette[std::size_t(ob->color)].name : "";
  }
  if (head == "what size is" && w[3] == "the" && n == 6) {
    const Object* ob = with_shape(w[4]);
    return ob ? (ob->size == ObjectSize::small ? "small" : "large") : "";
  }
  if (head == "what shape is" && w[3] == "the" && n == 7 && w[5] == "object") {
    const int c = color_of(w[4]);
    const Object* ob = only([&](const Object& e) { return e.color == c; });
    return ob ? std::string(kShapeWords[std::size_t(ob->shape)].first) : "";
  }
  if ((head == "what shape is" || head == "what color is") && w[n - 3] == "the") {
    const Object* ref = with_shape(w[n - 2]);
    const Object* other = ref ? other_than(ref) : nullptr;
    const int rel = relation_of(join(w, 3, n - 3));
    if (!other || rel < 0 || seen_from(*other, *ref) != Relation(rel)) return "";
    return head == "what shape is" ? std::string(kShapeWords[std::size_t(other->shape)].first)
                                   : o.palette[std::size_t(other->color)].name;
  }
  if (head == "is there a" && n == 6) {
    const int c = color_of(w[3]), s = shape_of(w[4]);
    REQUIRE(c >= 0);
    REQUIRE(s >= 0);
    const bool yes =
        std::any_of(objs.begin(), objs.end(), [&](const Object& e) { return e.color == c && int(e.shape) == s; });
    return yes ? "yes" : "no";
  }
  if (join(w, 0, 2) == "is the" && w[n - 3] == "the") {
    const Object* a = with_shape(w[2]);
    const Object* b = with_shape(w[n - 2]);
    const int rel = relation_of(join(w, 3, n - 3));
    if (!a || !b || a == b || rel < 0) return "";
    return seen_from(*a, *b) == Relation(rel) ? "yes" : "no";
  }
  FAIL("unrecognised question: ", question);
  return "";
}

std::string temp_dir(const std::string& name) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("blip2_test_shapes_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(dir);
  return dir.string();
}

}  // namespace

TEST_CASE("shapes world: a scene, its image and its captions depend only on (seed, index)") {
  const ShapesWorld a({}, 7), b({}, 7), other({}, 8);
  std::set<std::string> captions;
  int differs_by_seed = 0;
  for (std::uint64_t index : {0ull, 1ull, 2ull, 999'999ull, 1'000'000ull, 123'456'789'012ull}) {
    const Scene s = a.scene(index);
    // Draw other scenes in between: nothing carries over.
    (void)a.scene(index + 1);
    CHECK(same_scene(s, b.scene(index)));
    CHECK(same_scene(s, a.scene(index)));
    CHECK(a.render(s).data == b.render(b.scene(index)).data);
    Generator g1(index), g2(index);
    const std::string c = a.caption(s, g1);
    CHECK(c == b.caption(b.scene(index), g2));
    CHECK(a.canonical_caption(s) == b.canonical_caption(s));
    differs_by_seed += !same_scene(s, other.scene(index));
  }
  CHECK(differs_by_seed >= 5);
  for (std::uint64_t i = 0; i < 200; ++i) captions.insert(a.canonical_caption(a.scene(i)));
  CHECK(captions.size() > 100);
}

TEST_CASE("shapes world: every attribute, count, relation and texture occurs, and pairs are clearly apart") {
  const ShapesWorld world({}, 1);
  const int size = world.options().image_size;
  std::set<std::tuple<int, int, int>> combos;
  std::set<int> counts, relations, textures;
  for (std::uint64_t i = 0; i < 3000; ++i) {
    const Scene s = world.scene(i);
    counts.insert(int(s.objects.size()));
    textures.insert(int(s.background.texture));
    for (const Object& o : s.objects) {
      combos.insert({int(o.shape), o.color, int(o.size)});
      CHECK((o.x >= 0 && o.x < size && o.y >= 0 && o.y < size));
    }
    CHECK((s.background.level >= 90 && s.background.level <= 190));
    if (s.objects.size() != 2) continue;
    relations.insert(int(s.relation));
    const Object &first = s.objects[0], &second = s.objects[1];
    REQUIRE((s.relation == Relation::left_of || s.relation == Relation::above));
    CHECK(seen_from(first, second) == s.relation);
    const int along = s.relation == Relation::left_of ? second.x - first.x : second.y - first.y;
    const int across = s.relation == Relation::left_of ? std::abs(second.y - first.y) : std::abs(second.x - first.x);
    CHECK(along >= 2 * (size / 8) + 2);
    CHECK(across <= size / 8);
  }
  CHECK(combos.size() == 3 * 4 * 2);
  CHECK(counts == std::set<int>{1, 2});
  CHECK(relations == std::set<int>{int(Relation::left_of), int(Relation::above)});
  CHECK(textures.size() == 4);

  ShapesWorldOptions one;
  one.max_objects = 1;
  for (std::uint64_t i = 0; i < 100; ++i) CHECK(ShapesWorld(one, 1).scene(i).objects.size() == 1);
}

TEST_CASE("shapes world: objects are drawn in their palette color on a grey background") {
  ShapesWorldOptions opt;
  const ShapesWorld world(opt, 3);
  for (std::uint64_t i = 0; i < 400; ++i) {
    const Scene s = world.scene(i);
    const image::Image img = world.render(s);
    REQUIRE(img.width == 32);
    REQUIRE(img.height == 32);
    std::map<int, int> pixels_of_color;  // palette index -> pixel count
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < img.width; ++x) {
        const std::uint8_t* p = img.pixel(x, y);
        if (p[0] == p[1] && p[1] == p[2]) continue;
        int found = -1;
        for (std::size_t c = 0; c < opt.palette.size(); ++c)
          if (std::equal(p, p + 3, opt.palette[c].rgb.begin())) found = int(c);
        REQUIRE_MESSAGE(found >= 0, "scene ", i, ": pixel (", x, ", ", y, ") is neither grey nor a palette color");
        ++pixels_of_color[found];
      }
    const std::uint8_t* corner = img.pixel(0, 0);
    CHECK((corner[0] == corner[1] && corner[1] == corner[2]));
    std::map<int, int> objects_of_color;
    for (const Object& o : s.objects) {
      ++objects_of_color[o.color];
      CHECK(std::equal(img.pixel(o.x, o.y), img.pixel(o.x, o.y) + 3, opt.palette[std::size_t(o.color)].rgb.begin()));
    }
    CHECK(pixels_of_color.size() == objects_of_color.size());
    // The smallest shape (a small triangle) covers 41 pixels of a 32-pixel image; a large one over 100.
    for (const auto& [color, n] : objects_of_color) CHECK(pixels_of_color[color] >= 41 * n);
    if (s.objects.size() == 1) {
      CHECK(pixels_of_color.begin()->second > (s.objects[0].size == ObjectSize::large ? 100 : 0));
      CHECK(pixels_of_color.begin()->second < (s.objects[0].size == ObjectSize::small ? 90 : 1024));
    }
  }
}

TEST_CASE("shapes world: captions parse back to their scene and to no changed one") {
  const ShapesWorld world({}, 11);
  std::set<std::string> words_seen;
  std::set<std::string> starts;
  for (std::uint64_t i = 0; i < 3000; ++i) {
    const Scene s = world.scene(i);
    Generator g(i);
    const std::string canonical = world.canonical_caption(s);
    REQUIRE_MESSAGE(world.caption_matches(canonical, s), canonical);
    for (int k = 0; k < 3; ++k) {
      const std::string c = world.caption(s, g);
      REQUIRE_MESSAGE(world.caption_matches(c, s), "scene ", i, ": ", c);
      CHECK(world.caption_matches("  " + c + " \n", s));
      for (const auto& w : words_of(c)) words_seen.insert(w);
      starts.insert(words_of(c)[0] + " " + words_of(c)[1]);

      // One attribute of one object, the count or the relation changed: the caption is wrong.
      for (std::size_t j = 0; j < s.objects.size(); ++j) {
        Scene t = s;
        t.objects[j].color = (t.objects[j].color + 1) % 4;
        CHECK_FALSE(world.caption_matches(c, t));
        t = s;
        t.objects[j].shape = ObjectShape((int(t.objects[j].shape) + 1) % 3);
        CHECK_FALSE(world.caption_matches(c, t));
        t = s;
        t.objects[j].size = t.objects[j].size == ObjectSize::small ? ObjectSize::large : ObjectSize::small;
        CHECK_FALSE(world.caption_matches(c, t));
      }
      Scene t = s;
      if (s.objects.size() == 1) {
        t.objects.push_back(s.objects[0]);
        CHECK_FALSE(world.caption_matches(c, t));
        continue;
      }
      t.objects.pop_back();
      CHECK_FALSE(world.caption_matches(c, t));
      t = s;
      t.relation = s.relation == Relation::left_of ? Relation::above : Relation::left_of;
      CHECK_FALSE(world.caption_matches(c, t));
      const Object &a = s.objects[0], &b = s.objects[1];
      if (a.shape != b.shape || a.color != b.color || a.size != b.size) {  // else "x left of x" = "x right of x"
        t.relation = inverse(s.relation);
        CHECK_FALSE(world.caption_matches(c, t));
      }
    }
  }
  for (const char* w :
       {"disc", "box", "little", "big", "there", "picture", "with", "its", "it", "is", "right", "below"})
    CHECK_MESSAGE(words_seen.count(w), w);
  CHECK(starts.size() >= 6);  // "a small", "a little", "a large", "a big", "there is", "a picture"

  Scene one;
  one.objects.push_back({ObjectShape::circle, 0, ObjectSize::small, 5, 5});
  CHECK(world.canonical_caption(one) == "a small red circle");
  Scene two = one;
  two.objects.push_back({ObjectShape::square, 2, ObjectSize::large, 20, 6});
  CHECK(world.canonical_caption(two) == "a small red circle to the left of a large blue square");
  for (const char* c :
       {"a small red circle to the left of a large blue square", "a little red disc is to the left of a big blue box",
        "a large blue square to the right of a small red circle",
        "there is a big blue box to the right of a small red disc",
        "a large blue square with a small red circle to its left",
        "a picture of a small red circle to the left of a large blue square",
        "   a small  red circle\tto the left of a large blue square\n"})
    CHECK_MESSAGE(world.caption_matches(c, two), c);
  for (const char* c :
       {"", "a", "a small red", "hello world", "a small red circle", "a small red circle and a large blue square",
        "a small red circle to the left of", "a small red circle above a large blue square",
        "a large blue square to the left of a small red circle",
        "a small red circle to the left of a large blue square .",
        "a small red circle to the left of a large blue square to the left of a large blue square",
        "a small red circle to its left of a large blue square",
        "a small crimson circle to the left of a large blue square",
        "A small red circle to the left of a large blue square",
        "a small red circle to the left of a large blue square?"})
    CHECK_FALSE_MESSAGE(world.caption_matches(c, two), c);
  CHECK(world.caption_matches("there is a little red disc", one));
  CHECK(world.caption_matches("a picture of a small red circle", one));
  CHECK_FALSE(world.caption_matches("a small red circle to the left of a small red circle", one));
  CHECK_FALSE(world.caption_matches("a small red circle with", one));
}

TEST_CASE("shapes world: questions have the right one-word answers") {
  const ShapesWorld world({}, 5);
  std::map<std::string, int> answers;
  std::set<std::string> kinds;
  for (std::uint64_t i = 0; i < 2000; ++i) {
    const Scene s = world.scene(i);
    const auto qs = world.questions(s);
    REQUIRE(!qs.empty());
    std::set<std::string> distinct;
    for (const QA& qa : qs) {
      CHECK_MESSAGE(qa.answer == expected_answer(qa.question, s, world.options()), "scene ", i, ": ", qa.question);
      CHECK(words_of(qa.answer).size() == 1);
      CHECK(answer_matches(" " + qa.answer + "\n", qa.answer));
      distinct.insert(qa.question);
      ++answers[qa.answer];
      kinds.insert(join(words_of(qa.question), 0, 2));
    }
    CHECK(distinct.size() == qs.size());
    Generator g(i);
    const QA picked = world.question(s, g);
    CHECK(std::any_of(qs.begin(), qs.end(),
                      [&](const QA& e) { return e.question == picked.question && e.answer == picked.answer; }));
  }
  for (const char* a :
       {"yes", "no", "one", "two", "red", "green", "blue", "yellow", "circle", "square", "triangle", "small", "large"})
    CHECK_MESSAGE(answers[a] > 20, a);
  CHECK(kinds == std::set<std::string>{"how many", "what color", "what size", "what shape", "is there", "is the"});
  CHECK_FALSE(answer_matches("red circle", "red"));
  CHECK_FALSE(answer_matches("", "red"));
}

TEST_CASE("shapes world: the vocabulary holds every word of every caption, question and answer") {
  const ShapesWorld world({}, 2);
  const auto vocab = world.vocabulary();
  CHECK(std::is_sorted(vocab.begin(), vocab.end()));
  CHECK(std::adjacent_find(vocab.begin(), vocab.end()) == vocab.end());
  CHECK(std::binary_search(vocab.begin(), vocab.end(), "?"));
  std::set<std::string> used;
  for (std::uint64_t i = 0; i < 2000; ++i) {
    const Scene s = world.scene(i);
    Generator g(i);
    std::vector<std::string> texts{world.canonical_caption(s), world.caption(s, g), world.caption(s, g)};
    for (const QA& qa : world.questions(s)) {
      texts.push_back(qa.question);
      texts.push_back(qa.answer);
    }
    for (const auto& t : texts)
      for (const auto& w : words_of(t)) {
        CHECK_MESSAGE(std::binary_search(vocab.begin(), vocab.end(), w), w, " in: ", t);
        used.insert(w);
      }
  }
  CHECK(used.size() == vocab.size());  // and no word that never occurs
}

TEST_CASE("shapes world: options are checked") {
  ShapesWorldOptions o;
  o.image_size = 16;
  CHECK_THROWS_AS(ShapesWorld(o, 0), ValueError);
  o = {};
  o.max_objects = 3;
  CHECK_THROWS_AS(ShapesWorld(o, 0), ValueError);
  o = {};
  o.palette.push_back({"grey", {{128, 128, 128}}});
  CHECK_THROWS_AS(ShapesWorld(o, 0), ValueError);
  o = {};
  o.palette.push_back({"big", {{1, 2, 3}}});
  CHECK_THROWS_AS(ShapesWorld(o, 0), ValueError);
  o = {};
  o.palette.push_back({"Purple", {{120, 0, 160}}});
  CHECK_THROWS_AS(ShapesWorld(o, 0), ValueError);
  o = {};
  o.palette = {{"red", {{220, 40, 40}}}, {"purple", {{120, 0, 160}}}};
  o.image_size = 48;
  const ShapesWorld world(o, 0);
  CHECK(world.render(world.scene(0)).width == 48);
  const auto vocab = world.vocabulary();
  CHECK(std::binary_search(vocab.begin(), vocab.end(), "purple"));
  CHECK_FALSE(std::binary_search(vocab.begin(), vocab.end(), "blue"));
  Scene empty;
  CHECK_THROWS_AS(world.render(empty), ValueError);
}

TEST_CASE("word-level tokenizer files: OPT byte-level BPE with one token per word") {
  using namespace blip2::tokenizers;
  const ShapesWorld world({}, 9);
  const auto vocab = world.vocabulary();
  const std::string dir = temp_dir("opt");
  const WordLevelVocab info = write_word_level_tokenizer_files(vocab, dir, WordLevelKind::opt);
  const auto tok = load_tokenizer(dir);
  CHECK(tok->vocab_size() == info.size);
  CHECK(tok->find_token("Ġ") == 4 + ' ');  // the byte alphabet in byte order after the specials
  CHECK(tok->find_token("<s>") == 0);
  CHECK(tok->find_token("<pad>") == 1);
  CHECK(tok->find_token("</s>") == 2);
  CHECK(tok->find_token("<unk>") == 3);
  CHECK(tok->bos_id() == info.special.bos);
  CHECK(tok->eos_id() == info.special.eos);
  CHECK(tok->pad_id() == info.special.pad);
  for (const std::string& w : vocab) {
    CHECK_MESSAGE(tok->encode(w, false).size() == 1, w);
    CHECK_MESSAGE(tok->encode(" " + w, false).size() == 1, w);
    CHECK(tok->encode("a " + w, false) == std::vector<Id>{tok->token_to_id("a"), tok->encode(" " + w, false)[0]});
  }
  const Id newline = tok->token_to_id("Ċ");
  CHECK(tok->encode("\n", false) == std::vector<Id>{newline});
  for (std::uint64_t i = 0; i < 300; ++i) {
    const Scene s = world.scene(i);
    Generator g(i);
    std::vector<std::string> texts{world.caption(s, g), world.canonical_caption(s), world.question(s, g).question};
    for (const std::string& t : texts) {
      const auto ids = tok->encode(t, false);
      CHECK_MESSAGE(ids.size() == words_of(t).size(), t);
      CHECK(tok->decode(ids) == t);
      const auto with_bos = tok->encode(t + "\n");  // as LAVIS feeds OPT: "</s>" caption "\n"
      REQUIRE(with_bos.size() == ids.size() + 2);
      CHECK(with_bos.front() == 2);
      CHECK(with_bos.back() == newline);
      CHECK(std::equal(ids.begin(), ids.end(), with_bos.begin() + 1));
    }
  }
  // Any other text still encodes, through the byte alphabet.
  CHECK(tok->decode(tok->encode("Zebra 42!", false)) == "Zebra 42!");
  std::filesystem::remove_all(dir);
}

TEST_CASE("word-level tokenizer files: BERT WordPiece with [CLS] ... [SEP] and [DEC] last") {
  using namespace blip2::tokenizers;
  const ShapesWorld world({}, 9);
  const auto vocab = world.vocabulary();
  const std::string dir = temp_dir("bert");
  const WordLevelVocab info = write_word_level_tokenizer_files(vocab, dir, WordLevelKind::bert);
  CHECK(info.size == vocab.size() + 6);
  const auto tok = load_tokenizer(dir);
  CHECK(tok->vocab_size() == info.size);
  const auto& sp = tok->special_ids();
  CHECK(sp.pad == 0);
  CHECK(sp.unk == 1);
  CHECK(sp.cls == 2);
  CHECK(sp.sep == 3);
  CHECK(sp.mask == 4);
  CHECK((info.special.pad == 0 && info.special.unk == 1 && info.special.cls == 2 && info.special.sep == 3 &&
         info.special.mask == 4));
  CHECK(tok->find_token("[DEC]") == Id(info.size) - 1);
  CHECK(info.special.bos == Id(info.size) - 1);
  CHECK(WordPieceTokenizer::qformer(dir + "/vocab.txt").bos_id() == info.special.bos);  // LAVIS's [DEC] BOS
  for (std::size_t i = 0; i < vocab.size(); ++i) CHECK(tok->encode(vocab[i], false) == std::vector<Id>{Id(5 + i)});
  for (std::uint64_t i = 0; i < 300; ++i) {
    const Scene s = world.scene(i);
    Generator g(i);
    for (const std::string& t : {world.caption(s, g), world.question(s, g).question}) {
      const auto words = words_of(t);
      std::vector<Id> expected{2};
      for (const auto& w : words) expected.push_back(tok->token_to_id(w));
      expected.push_back(3);
      CHECK_MESSAGE(tok->encode(t) == expected, t);
    }
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("word-level tokenizer files: words that cannot be one token are refused") {
  using namespace blip2::tokenizers;
  const std::string dir = temp_dir("bad");
  CHECK_THROWS_AS(write_word_level_tokenizer_files({"red", "red"}, dir, WordLevelKind::opt), ValueError);
  CHECK_THROWS_AS(write_word_level_tokenizer_files({}, dir, WordLevelKind::bert), ValueError);
  CHECK_THROWS_AS(write_word_level_tokenizer_files({"red", ""}, dir, WordLevelKind::opt), ValueError);
  CHECK_THROWS_AS(write_word_level_tokenizer_files({"answer:"}, dir, WordLevelKind::opt), ValueError);
  CHECK_THROWS_AS(write_word_level_tokenizer_files({"two words"}, dir, WordLevelKind::opt), ValueError);
  CHECK_THROWS_AS(write_word_level_tokenizer_files({"Red"}, dir, WordLevelKind::bert), ValueError);
  CHECK_THROWS_AS(write_word_level_tokenizer_files({"what?"}, dir, WordLevelKind::bert), ValueError);
  // Mixed case and punctuation words are fine for BPE as long as each is one pre-token.
  const auto info = write_word_level_tokenizer_files({"Question", ":", "Answer", "?"}, dir, WordLevelKind::opt);
  const auto tok = tokenizers::load_tokenizer(dir);
  CHECK(tok->vocab_size() == info.size);
  CHECK(tok->encode("Question : Answer ?", false).size() == 4);
  std::filesystem::remove_all(dir);
}
