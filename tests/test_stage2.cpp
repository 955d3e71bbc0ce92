// Stage-2 pre-training losses against LAVIS's own Blip2OPT.forward and Blip2T5.forward
// (tests/data/lavis-stage2-opt and lavis-stage2-t5, see the README in lavis-stage2-opt for the
// target rules and tolerances), gradient checkpointing through the frozen LLM, the prefix-LM split,
// and bad input.
#include <blip2/pipelines/model_dir.hpp>
#include <blip2/train/stage2_objectives.hpp>

#include "model_support.hpp"

using namespace blip2;
using namespace blip2::testing;

namespace {

const std::string kOpt = std::string(BLIP2_TEST_DATA) + "/lavis-stage2-opt/";
const std::string kT5 = std::string(BLIP2_TEST_DATA) + "/lavis-stage2-t5/";

double max_abs(const Tensor<float>& t) {
  double m = 0;
  for (float v : t.to_vector()) m = std::max(m, std::abs(double(v)));
  return m;
}

void check_loss(const Tensor<float>& ours, const Tensor<float>& ref) {
  const double a = ours.item(), b = ref.to_vector()[0];
  CHECK_MESSAGE(std::abs(a - b) <= 1e-5 * std::abs(b), "loss " << a << " vs LAVIS " << b);
}

struct OptFixture {
  std::unique_ptr<Blip2OPT<float>> model = load_model<Blip2OPT<float>>(kOpt + "model", load_config(kOpt + "model"));
  io::SafeTensorsFile io = io::SafeTensorsFile::open(kOpt + "io.safetensors");
  Stage2Output<float> run(const io::SafeTensorsFile& in, index_t prompt_length) const {
    return stage2_opt_loss(*model, io.load<float>("pixel_values"), in.load<std::int64_t>("input_ids"),
                           in.load<std::int64_t>("text_attention_mask"), prompt_length);
  }
};

}  // namespace

TEST_CASE("stage 2, OPT: LAVIS's targets, logits, loss and gradients, without and with a prompt") {
  for (const std::string which : {"", "_prompt"}) {
    CAPTURE(which);
    OptFixture f;
    f.model->set_stage2_trainable();
    const auto in = io::SafeTensorsFile::open(kOpt + "io" + which + ".safetensors");
    const index_t prompt_length = which.empty() ? 0 : index_t(in.load<std::int64_t>("prompt_length").to_vector()[0]);
    const auto o = f.run(in, prompt_length);
    check_activation("image_embeds", o.image_embeds, f.io.load<float>("image_embeds"));
    check_activation("query_output", o.query_output, f.io.load<float>("query_output"));
    check_activation("language_model_inputs", o.language_model_inputs, f.io.load<float>("language_model_inputs"));
    CHECK(o.targets.to_vector() == in.load<std::int64_t>("targets").to_vector());
    check_activation("logits", o.logits, in.load<float>("logits"));
    check_loss(o.loss, in.load<float>("loss"));
    o.loss.backward();
    CHECK(check_trained_gradients(*f.model, kOpt + "grads" + which + ".safetensors") == 91);
  }
}

TEST_CASE("stage 2, OPT: gradient checkpointing (Q-Former and OPT layers) gives the same gradients") {
  OptFixture plain, ckpt;
  plain.model->set_stage2_trainable();
  ckpt.model->set_stage2_trainable();
  ckpt.model->qformer->gradient_checkpointing = true;
  ckpt.model->language_model->gradient_checkpointing = true;
  const auto a = plain.run(plain.io, 0), b = ckpt.run(ckpt.io, 0);
  CHECK(a.loss.item() == doctest::Approx(b.loss.item()).epsilon(1e-6));
  a.loss.backward();
  b.loss.backward();
  const auto pa = plain.model->trainable_parameters(), pb = ckpt.model->trainable_parameters();
  REQUIRE(pa.size() == pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i)
    CHECK(max_abs_diff(pa[i].grad(), pb[i].grad()) <= 1e-5 * std::max(1.0, max_abs(pa[i].grad())));
}

TEST_CASE("stage 2, OPT: bf16-stored frozen weights give a close loss and gradient") {
  auto config = load_config(kOpt + "model");
  auto model = load_model<Blip2OPT<float, cpu, bf16>>(kOpt + "model", config);
  model->set_stage2_trainable();
  const auto io = io::SafeTensorsFile::open(kOpt + "io.safetensors");
  const auto o = stage2_opt_loss(*model, io.load<float>("pixel_values"), io.load<std::int64_t>("input_ids"),
                                 io.load<std::int64_t>("text_attention_mask"));
  CHECK(o.loss.item() == doctest::Approx(io.load<float>("loss").item()).epsilon(1e-2));
  o.loss.backward();
  const auto grads = io::SafeTensorsFile::open(kOpt + "grads.safetensors");
  check_gradient("query_tokens", model->query_tokens.grad(), grads.load<float>("grad.query_tokens"), 1e-1);
}

TEST_CASE("stage 2, OPT: targets follow LAVIS's rules on other shapes") {
  // 2 queries; rows: padded, full, heavily padded; prompt of 2 tokens (BOS + one word).
  const auto ids = Tensor<std::int64_t>::from_vector({3, 5}, {2, 7, 8, 9, 1, 2, 7, 5, 6, 4, 2, 7, 1, 1, 1});
  CHECK(opt_caption_targets(ids, 1, 0, 2).to_vector() ==
        std::vector<std::int64_t>{-100, -100, 2, 7, 8, 9, -100, -100, -100, 2, 7, 5, 6, 4, -100, -100, 2, 7, -100, -100, -100});
  CHECK(opt_caption_targets(ids, 1, 2, 2).to_vector() ==
        std::vector<std::int64_t>{-100, -100, -100, -100, 8, 9, -100, -100, -100, -100, -100, 5, 6, 4, -100, -100, -100, -100,
                                  -100, -100, -100});
  CHECK_THROWS_WITH_AS(opt_caption_targets(ids, 1, 6, 2), doctest::Contains("prompt_length 6"), ValueError);
}

TEST_CASE("stage 2, OPT: bad input gets a clear error") {
  OptFixture f;
  const auto pixels = f.io.load<float>("pixel_values");
  const auto ids = f.io.load<std::int64_t>("input_ids"), mask = f.io.load<std::int64_t>("text_attention_mask");
  CHECK_THROWS_WITH_AS(stage2_opt_loss(*f.model, pixels.slice(0, 0, 2).contiguous(), ids, mask),
                       doctest::Contains("batch of 3"), ShapeError);
  CHECK_THROWS_WITH_AS(stage2_opt_loss(*f.model, pixels, ids, mask.slice(1, 0, 4).contiguous()),
                       doctest::Contains("text_attention_mask"), ShapeError);
  auto bad = ids.to_vector();
  bad[2] = 500;
  CHECK_THROWS_WITH_AS(stage2_opt_loss(*f.model, pixels, Tensor<std::int64_t>::from_vector(ids.shape(), bad), mask),
                       doctest::Contains("500"), ValueError);
}

TEST_CASE("stage 2, Flan-T5: LAVIS's prefix-LM logits, loss and gradients") {
  for (bool checkpointing : {false, true}) {
    CAPTURE(checkpointing);
    auto model = load_model<Blip2T5<float>>(kT5 + "model", load_config(kT5 + "model"));
    use_lavis_t5_activation(*model);
    model->set_stage2_trainable();
    model->qformer->gradient_checkpointing = checkpointing;
    model->language_model->gradient_checkpointing = checkpointing;
    const auto io = io::SafeTensorsFile::open(kT5 + "io.safetensors");
    const auto o = stage2_t5_loss(*model, io.load<float>("pixel_values"), io.load<std::int64_t>("input_ids"),
                                  io.load<std::int64_t>("text_attention_mask"), io.load<std::int64_t>("output_ids"),
                                  io.load<std::int64_t>("decoder_attention_mask"));
    check_activation("image_embeds", o.image_embeds, io.load<float>("image_embeds"));
    check_activation("language_model_inputs", o.language_model_inputs, io.load<float>("language_model_inputs"));
    CHECK(o.targets.to_vector() == io.load<std::int64_t>("labels").to_vector());
    check_activation("encoder_last_hidden_state", o.encoder_last_hidden_state, io.load<float>("encoder_last_hidden_state"));
    check_activation("logits", o.logits, io.load<float>("logits"));
    check_loss(o.loss, io.load<float>("loss"));
    o.loss.backward();
    CHECK(check_trained_gradients(*model, kT5 + "grads.safetensors") == 91);
  }
}

TEST_CASE("stage 2, Flan-T5: the prefix/suffix split") {
  const auto s = split_prefix_lm("a dog runs on the grass", 2);
  CHECK(s.prefix == "a dog");
  CHECK(s.suffix == "runs on the grass");
  CHECK_THROWS_WITH_AS(split_prefix_lm("a cat", 2), doctest::Contains("both parts need a word"), ValueError);
  CHECK_THROWS_WITH_AS(split_prefix_lm("cat", *std::make_unique<Generator>(1)), doctest::Contains("at least two"), ValueError);
  // Seeded: reproducible, and the split point covers 1 .. n/2 words.
  Generator a(5), b(5);
  std::set<std::size_t> seen;
  for (int i = 0; i < 200; ++i) {
    const auto x = split_prefix_lm("one two three four five six seven", a), y = split_prefix_lm("one two three four five six seven", b);
    CHECK(x.prefix == y.prefix);
    std::size_t words = 1 + std::count(x.prefix.begin(), x.prefix.end(), ' ');
    seen.insert(words);
  }
  CHECK(seen == std::set<std::size_t>{1, 2, 3});
}
