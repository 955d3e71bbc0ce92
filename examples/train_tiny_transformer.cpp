// Teaching example: a one-block character-level transformer learns to continue a sentence, with
// blip2's autograd, AdamW, cosine schedule and gradient clipping. The loss falls from about
// ln(vocab) towards zero, and the model then writes the text back from its first characters.
#include <blip2/blip2.hpp>

#include <cstdio>
#include <map>
#include <string>

using namespace blip2;
using T = float;
using TensorF = Tensor<T, cpu>;
using Ids = Tensor<std::int64_t, cpu>;

// Pre-LN transformer block (the ViT / OPT layout): x + attn(ln(x)), then x + mlp(ln(x)).
struct Block : nn::Module<T, cpu> {
  Block(index_t dim, index_t heads, Generator& g) {
    ln1 = register_module("ln1", std::make_shared<nn::LayerNorm<T>>(dim));
    attn = register_module("attn", std::make_shared<nn::MultiHeadAttention<T>>(dim, heads, g));
    ln2 = register_module("ln2", std::make_shared<nn::LayerNorm<T>>(dim));
    fc1 = register_module("fc1", std::make_shared<nn::Linear<T>>(dim, 4 * dim, g));
    fc2 = register_module("fc2", std::make_shared<nn::Linear<T>>(4 * dim, dim, g));
  }
  TensorF operator()(const TensorF& x) const {
    AttentionOptions causal;
    causal.causal = true;
    const TensorF h = x + (*attn)((*ln1)(x), TensorF(), causal);
    return h + (*fc2)(gelu((*fc1)((*ln2)(h))));
  }
  std::shared_ptr<nn::LayerNorm<T>> ln1, ln2;
  std::shared_ptr<nn::MultiHeadAttention<T>> attn;
  std::shared_ptr<nn::Linear<T>> fc1, fc2;
};

struct TinyLM : nn::Module<T, cpu> {
  TinyLM(index_t vocab, index_t context, index_t dim, Generator& g) {
    tokens = register_module("tokens", std::make_shared<nn::Embedding<T>>(vocab, dim, g));
    positions = register_module("positions", std::make_shared<nn::Embedding<T>>(context, dim, g));
    block = register_module("block", std::make_shared<Block>(dim, 4, g));
    ln = register_module("ln", std::make_shared<nn::LayerNorm<T>>(dim));
    head = register_module("head", std::make_shared<nn::Linear<T>>(dim, vocab, g));
  }
  // ids [B, L] -> logits [B, L, vocab]
  TensorF operator()(const Ids& ids) const {
    const TensorF pos = (*positions)(arange<std::int64_t>(ids.size(1)));
    return (*head)((*ln)((*block)((*tokens)(ids) + pos)));
  }
  std::shared_ptr<nn::Embedding<T>> tokens, positions;
  std::shared_ptr<Block> block;
  std::shared_ptr<nn::LayerNorm<T>> ln;
  std::shared_ptr<nn::Linear<T>> head;
};

int main(int argc, char** argv) {
  const std::string text = "a photo of a cat sitting on a red sofa next to a cup of coffee. ";
  const long steps = argc > 1 ? std::stol(argv[1]) : 300;
  std::map<char, std::int64_t> to_id;
  std::string to_char;
  for (char c : text)
    if (!to_id.count(c)) to_id[c] = std::int64_t(to_char.size()), to_char += c;
  const index_t vocab = index_t(to_char.size()), context = 24, batch = 16;

  Generator gen(0);
  TinyLM model(vocab, context, 48, gen);
  AdamW<T, cpu> opt(model.trainable_parameters(), {3e-3, 0.9, 0.99, 1e-8, 0.01});
  const CosineSchedule schedule{3e-3, steps / 10, steps, 3e-4};
  std::printf("tiny transformer: %lld parameters, vocab %lld, %ld steps on %d threads\n",
              static_cast<long long>(model.parameter_count()), static_cast<long long>(vocab), steps, num_threads());

  const std::string cycle = text + text;
  for (long step = 0; step < steps; ++step) {
    std::vector<std::int64_t> in, target;  // random windows: predict each next character
    for (index_t b = 0; b < batch; ++b) {
      const std::size_t start = std::size_t(gen.uniform() * double(text.size()));
      for (index_t i = 0; i < context; ++i) {
        in.push_back(to_id[cycle[start + std::size_t(i)]]);
        target.push_back(to_id[cycle[start + std::size_t(i) + 1]]);
      }
    }
    opt.set_lr(schedule.lr(step));
    opt.zero_grad();
    const TensorF loss = cross_entropy(model(Ids::from_vector({batch, context}, in)),
                                       Ids::from_vector({batch, context}, target));
    loss.backward();
    const double norm = clip_grad_norm(model.trainable_parameters(), 1.0);
    opt.step();
    if (step % 25 == 0 || step == steps - 1)
      std::printf("step %4ld  loss %.4f  grad-norm %.3f  lr %.2e\n", step, double(loss.item()), norm, opt.lr());
  }

  NoGrad no_grad;  // greedy continuation of the first characters
  std::string out = text.substr(0, 8);
  while (out.size() < 64) {
    std::vector<std::int64_t> ids;
    for (std::size_t i = out.size() > std::size_t(context) ? out.size() - std::size_t(context) : 0; i < out.size(); ++i)
      ids.push_back(to_id[out[i]]);
    const TensorF logits = model(Ids::from_vector({1, index_t(ids.size())}, ids));
    const auto last = logits.slice(1, -1, logits.size(1)).reshape({vocab}).to_vector();
    out += to_char[std::size_t(std::max_element(last.begin(), last.end()) - last.begin())];
  }
  std::printf("sample: \"%s\"\n", out.c_str());
  return 0;
}
