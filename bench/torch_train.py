#!/usr/bin/env python3
"""PyTorch eager peer for BLIP-2 pre-training steps on the CPU: one stage-1 step (LAVIS
Blip2Qformer.forward: ITC + ITM + ITG) and one stage-2 step (LAVIS Blip2OPT.forward: Q-Former soft
prompts into a frozen OPT-2.7B), each timed as forward, backward and AdamW step, with random
weights (no checkpoint is read) and plain torch.nn layers (no LAVIS, no transformers).

    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_train.py --threads 2 --part stage1|stage2|all [--quick]

Options: --batch B (4), --text-len T (stage 1: 32, LAVIS max_txt_len; stage 2: 24), --steps N (3:
median of N timed steps after one warm-up step), --layers N (OPT depth for stage 2, default 32),
--opt-dtype f32|bf16 (stage 2: how the frozen OPT weights are stored), --quick (steps 1 and 4 OPT
layers unless --layers is given). --part all runs each part in a fresh subprocess of this script so
that peak_rss_mb is that part's own. One JSON line per part on stdout; the initial losses go to
stderr (stage 1 from random weights: itc ~ log(B), itm ~ 0.69, itg ~ log(30523) = 10.3).

What the steps are (the C++ side must build the same to be comparable):
  Inputs. The frozen EVA ViT-g/14 is not run: its output is a fixed random tensor [B, 257, 1408]
  (randn). Token ids are random (seed 0). Stage 1 (BERT tokenizer + [DEC]): row b is [CLS]=101,
  random ids in [1000, 30522), [SEP]=102 at its last valid position, then pad 0; rows 1 and 3 are
  padded (valid lengths T - T/4 and T/2), the others are full (LAVIS pads to max_length). Stage 2
  (OPT tokenizer, padding "longest", right side): row b is BOS=2, random ids in [4, 50265), "\\n"=50118
  last, then pad 1; rows 1 and 3 padded the same way. Attention masks are 1 on valid tokens.
  Stage 1 trains everything listed: ln_vision LayerNorm(1408, eps 1e-5), the Q-Former (BERT-base,
  12 layers, cross-attention to the 1408-wide image embeddings in layers 0, 2, ..., 10, separate
  query and text FFNs, post-LN eps 1e-12), word embeddings [30523, 768] (padding_idx 0), position
  embeddings [512, 768] and the embedding LayerNorm (also applied to the query tokens), 32 query
  tokens, vision_proj and text_proj Linear(768, 256), itm_head Linear(768, 2), the ITG head
  (dense 768x768, GELU, LayerNorm, output weight tied to the word embeddings, bias [30523]) and temp.
  Stage 2 trains ln_vision, the Q-Former without its text parts (no word/position embeddings, no
  text FFNs, no LM head; the embedding LayerNorm stays), the query tokens and language_projection
  Linear(768, 2560); OPT-2.7B is frozen (requires_grad False) but the backward pass goes through it.
  No dropout anywhere (LAVIS trains with dropout 0.1 in the Q-Former and OPT; left out here so the
  step is deterministic apart from the ITM negative sampling). Attention masks are additive:
  -10000 for masked keys in the Q-Former (as BERT/LAVIS), -inf in OPT. AdamW (lr 1e-4, weight
  decay 0.05 on matrices, 0 on parameters with fewer than 2 dimensions, as LAVIS's optimizer groups).
  Initialisation: torch defaults for Linear and LayerNorm; embeddings and query tokens N(0, 0.02)
  (with torch's default N(0, 1) the tied LM heads give absurd logits).
  --opt-dtype bf16 stores the OPT matrices, embeddings and LayerNorm parameters as bfloat16; each
  product upcasts its weight to float32 on the fly (forward and again in backward, no float32 copy is
  kept), activations and the Q-Former stay float32. Stage 1 and the trainable part of stage 2 are
  float32.

Keys: seconds is the median whole step (zero_grad + forward + backward + optimizer), forward_s,
backward_s and optimizer_s the medians of each phase; trainable_mb counts the trained parameters in
float32, weights_mb all parameters in their storage type (tied weights once); peak_rss_mb is the
process's peak resident memory."""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_models import attention  # the same multi-head attention as the inference peer

# BLIP-2 Q-Former (BERT-base) and OPT-2.7B sizes.
D, HEADS, FF, VISION, QUERIES = 768, 12, 3072, 1408, 32
BERT_VOCAB, BERT_POS, CLS, SEP, BERT_PAD, DEC = 30523, 512, 101, 102, 0, 30522
OPT_VOCAB, OPT_D, OPT_HEADS, OPT_FF, OPT_POS = 50272, 2560, 32, 10240, 2048 + 2
OPT_BOS, OPT_PAD, OPT_NEWLINE = 2, 1, 50118
EMBED_STD = 0.02


# ---------------------------------------------------------------- Q-Former

class BertAttention(nn.Module):
    """Self- or cross-attention, output dense, post-LN with the residual."""

    def __init__(self, kv_width=D):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(D, D), nn.Linear(kv_width, D), nn.Linear(kv_width, D)
        self.dense = nn.Linear(D, D)
        self.ln = nn.LayerNorm(D, eps=1e-12)

    def forward(self, x, source=None, mask=None, past=None):
        src = x if source is None else source
        k, v = self.k(src), self.v(src)
        if past is not None:
            k, v = torch.cat([past[0], k], 1), torch.cat([past[1], v], 1)
        ctx = attention(self.q(x), k, v, HEADS, mask)
        return self.ln(self.dense(ctx) + x), (k, v)


class BertFFN(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(D, FF), nn.Linear(FF, D)
        self.ln = nn.LayerNorm(D, eps=1e-12)

    def forward(self, x):
        return self.ln(self.fc2(F.gelu(self.fc1(x))) + x)


class QFormerLayer(nn.Module):
    def __init__(self, cross, text=True):
        super().__init__()
        self.attn = BertAttention()
        self.cross = BertAttention(VISION) if cross else None
        self.ffn_query = BertFFN()
        self.ffn_text = BertFFN() if text else None

    def forward(self, x, n_query, image=None, mask=None, past=None):
        a, present = self.attn(x, mask=mask, past=past)  # present: this layer's self-attention k, v
        if n_query == 0:
            return self.ffn_text(a), present
        q = a[:, :n_query]
        if self.cross is not None:
            q = self.cross(q, source=image)[0]  # image attention mask is all ones
        out = self.ffn_query(q)
        if a.shape[1] > n_query:
            out = torch.cat([out, self.ffn_text(a[:, n_query:])], 1)
        return out, present


class QFormer(nn.Module):
    """LAVIS's Qformer BertModel: embeddings (word + position for text, queries as given, one
    LayerNorm over both) and 12 layers; n_query = number of leading query positions."""

    def __init__(self, text=True, layers=12):
        super().__init__()
        if text:
            self.word = nn.Embedding(BERT_VOCAB, D, padding_idx=BERT_PAD)
            self.pos = nn.Embedding(BERT_POS, D)
        self.ln = nn.LayerNorm(D, eps=1e-12)
        self.layers = nn.ModuleList(QFormerLayer(i % 2 == 0, text) for i in range(layers))

    def forward(self, ids=None, query=None, image=None, mask=None, past=None):
        parts = [] if query is None else [query]
        if ids is not None:  # positions from 0 (LAVIS: past length minus query length = 0)
            parts.append(self.word(ids) + self.pos.weight[: ids.shape[1]])
        x = self.ln(torch.cat(parts, 1) if len(parts) > 1 else parts[0])
        n_query = 0 if query is None else query.shape[1]
        presents = []
        for i, layer in enumerate(self.layers):
            x, present = layer(x, n_query, image, mask, None if past is None else past[i])
            presents.append(present)
        return x, presents


def bert_mask(keep):
    """[..., Lk] of 0/1 -> additive mask, -10000 on masked keys (BERT's extended attention mask)."""
    return (1.0 - keep.float()) * -10000.0


def init_embeddings(model):
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            with torch.no_grad():
                m.weight.normal_(0.0, EMBED_STD)
                if m.padding_idx is not None:
                    m.weight[m.padding_idx].zero_()


class Stage1(nn.Module):
    """LAVIS Blip2Qformer (stage-1 pre-training) minus the frozen ViT."""

    def __init__(self):
        super().__init__()
        self.ln_vision = nn.LayerNorm(VISION, eps=1e-5)
        self.qformer = QFormer(text=True)
        self.query_tokens = nn.Parameter(torch.empty(1, QUERIES, D).normal_(0.0, EMBED_STD))
        self.vision_proj, self.text_proj = nn.Linear(D, 256), nn.Linear(D, 256)
        self.itm_head = nn.Linear(D, 2)
        self.lm_dense = nn.Linear(D, D)  # ITG head: dense, GELU, LayerNorm, tied decoder + bias
        self.lm_ln = nn.LayerNorm(D, eps=1e-12)
        self.lm_bias = nn.Parameter(torch.zeros(BERT_VOCAB))
        self.temp = nn.Parameter(0.07 * torch.ones([]))
        init_embeddings(self)

    def forward(self, features, ids, keep):
        # No temperature clamp: LAVIS's Blip2Qformer.forward divides by temp as it is.
        b = ids.shape[0]
        image = self.ln_vision(features)
        queries = self.query_tokens.expand(b, -1, -1)

        # Query pass: queries alone, cross-attending to the image; keep each layer's keys/values.
        query_out, query_kv = self.qformer(query=queries, image=image)
        image_feats = F.normalize(self.vision_proj(query_out), dim=-1)  # [B, 32, 256]
        # Text pass: text alone, bidirectional with the padding mask, text FFN.
        text_out, _ = self.qformer(ids=ids, mask=bert_mask(keep)[:, None, None, :])
        text_feat = F.normalize(self.text_proj(text_out[:, 0]), dim=-1)  # [B, 256]

        # ITC
        sim_i2t = torch.einsum("iqd,jd->ijq", image_feats, text_feat).max(-1)[0] / self.temp
        sim_t2i = torch.einsum("id,jqd->ijq", text_feat, image_feats).max(-1)[0] / self.temp
        targets = torch.arange(b)
        loss_itc = (F.cross_entropy(sim_i2t, targets, label_smoothing=0.1)
                    + F.cross_entropy(sim_t2i, targets, label_smoothing=0.1)) / 2

        # ITM: one hard negative image per text and one negative text per image.
        with torch.no_grad():
            weights_t2i = F.softmax(sim_t2i.clone().fill_diagonal_(-10000), dim=1)
            weights_i2t = F.softmax(sim_i2t.clone().fill_diagonal_(-10000), dim=1)
            neg_image = torch.multinomial(weights_t2i, 1).squeeze(1)
            neg_text = torch.multinomial(weights_i2t, 1).squeeze(1)
        ids_all = torch.cat([ids, ids, ids[neg_text]], 0)  # pos, pos, neg
        keep_all = torch.cat([keep, keep, keep[neg_text]], 0)
        image_all = torch.cat([image, image[neg_image], image], 0)  # pos, neg, pos
        queries_itm = self.query_tokens.expand(3 * b, -1, -1)
        keep_itm = torch.cat([torch.ones(3 * b, QUERIES, dtype=keep.dtype), keep_all], 1)
        itm_out, _ = self.qformer(ids=ids_all, query=queries_itm, image=image_all,
                                  mask=bert_mask(keep_itm)[:, None, None, :])
        itm_logits = self.itm_head(itm_out[:, :QUERIES]).mean(1)
        itm_labels = torch.cat([torch.ones(b, dtype=torch.long), torch.zeros(2 * b, dtype=torch.long)])
        loss_itm = F.cross_entropy(itm_logits, itm_labels)

        # ITG: causal text attending to all query keys/values of the query pass.
        dec_ids = ids.clone()
        dec_ids[:, 0] = DEC
        labels = dec_ids.masked_fill(dec_ids == BERT_PAD, -100)
        t = ids.shape[1]
        causal = torch.ones(t, t).tril()
        allowed = torch.cat([torch.ones(t, QUERIES), causal], 1)[None] * torch.cat(
            [torch.ones(b, QUERIES), keep.float()], 1)[:, None, :]  # [B, T, 32 + T]
        dec_out, _ = self.qformer(ids=dec_ids, mask=bert_mask(allowed)[:, None], past=query_kv)
        h = self.lm_ln(F.gelu(self.lm_dense(dec_out)))
        logits = h @ self.qformer.word.weight.t() + self.lm_bias
        loss_itg = F.cross_entropy(logits[:, :-1].reshape(-1, BERT_VOCAB), labels[:, 1:].reshape(-1),
                                   ignore_index=-100, label_smoothing=0.1)
        loss = loss_itc + loss_itm + loss_itg
        return loss, {"itc": loss_itc.item(), "itm": loss_itm.item(), "itg": loss_itg.item()}


# ---------------------------------------------------------------- OPT (frozen)

class UpcastLinear(torch.autograd.Function):
    """y = x W^T + b with W (and b) stored as bfloat16 and converted to float32 for the product;
    backward gives only dx (W is frozen) and converts W again instead of keeping a float32 copy."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(w)
        return F.linear(x, w.float(), None if b is None else b.float())

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return (grad @ w.float() if ctx.needs_input_grad[0] else None), None, None


def linear(m_weight, m_bias, x):
    if m_weight.dtype == torch.float32:
        return F.linear(x, m_weight, m_bias)
    return UpcastLinear.apply(x, m_weight, m_bias)


def lin(m, x):
    return linear(m.weight, m.bias, x)


def layer_norm(m, x):
    return F.layer_norm(x, m.normalized_shape, m.weight.float(), m.bias.float(), m.eps)


class OPTLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(OPT_D, OPT_D) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(OPT_D), nn.LayerNorm(OPT_D)
        self.fc1, self.fc2 = nn.Linear(OPT_D, OPT_FF), nn.Linear(OPT_FF, OPT_D)

    def forward(self, x, mask):
        h = layer_norm(self.ln1, x)
        x = x + lin(self.o, attention(lin(self.q, h), lin(self.k, h), lin(self.v, h), OPT_HEADS, mask))
        return x + lin(self.fc2, F.relu(lin(self.fc1, layer_norm(self.ln2, x))))


class OPT(nn.Module):
    """OPT-2.7B decoder (pre-LN, learned positions with offset 2, final LayerNorm, tied LM head)."""

    def __init__(self, layers, dtype):
        super().__init__()
        self.embed = nn.Embedding(OPT_VOCAB, OPT_D, padding_idx=OPT_PAD)
        self.pos = nn.Embedding(OPT_POS, OPT_D)
        init_embeddings(self)
        self.embed.to(dtype)
        self.pos.to(dtype)
        self.layers = nn.ModuleList()
        for _ in range(layers):  # built in float32 one layer at a time, then stored in dtype
            self.layers.append(OPTLayer().to(dtype))
        self.ln = nn.LayerNorm(OPT_D).to(dtype)
        self.requires_grad_(False)

    def embed_tokens(self, ids):
        return F.embedding(ids, self.embed.weight).float()

    def forward(self, embeds, keep):
        keep = keep.long()
        positions = (keep.cumsum(1) * keep) - 1 + 2
        x = embeds + F.embedding(positions, self.pos.weight).float()
        b, n = keep.shape
        mask = torch.full((n, n), float("-inf")).triu(1).expand(b, 1, n, n)
        mask = mask.masked_fill(keep[:, None, None, :] == 0, float("-inf"))
        for layer in self.layers:
            x = layer(x, mask)
        return linear(self.embed.weight, None, layer_norm(self.ln, x))


class Stage2(nn.Module):
    """LAVIS Blip2OPT (stage-2 pre-training) minus the frozen ViT."""

    def __init__(self, opt_layers, opt_dtype):
        super().__init__()
        self.ln_vision = nn.LayerNorm(VISION, eps=1e-5)
        self.qformer = QFormer(text=False)
        self.query_tokens = nn.Parameter(torch.empty(1, QUERIES, D).normal_(0.0, EMBED_STD))
        self.language_projection = nn.Linear(D, OPT_D)
        self.opt = OPT(opt_layers, opt_dtype)

    def forward(self, features, ids, keep):
        b = ids.shape[0]
        image = self.ln_vision(features)
        query_out, _ = self.qformer(query=self.query_tokens.expand(b, -1, -1), image=image)
        prompts = self.language_projection(query_out)  # [B, 32, 2560]
        embeds = torch.cat([prompts, self.opt.embed_tokens(ids)], 1)
        keep_all = torch.cat([torch.ones(b, QUERIES, dtype=keep.dtype), keep], 1)
        logits = self.opt(embeds, keep_all)
        targets = torch.cat([torch.full((b, QUERIES), -100, dtype=torch.long), ids.masked_fill(keep == 0, -100)], 1)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, OPT_VOCAB), targets[:, 1:].reshape(-1), ignore_index=-100)
        return loss, {"lm": loss.item()}


# ---------------------------------------------------------------- inputs, timing, report

def valid_lengths(batch, t):
    """Rows 1 and 3 padded (lengths T - T/4 and T/2), the others full."""
    lengths = [t] * batch
    if batch > 1:
        lengths[1] = t - t // 4
    if batch > 3:
        lengths[3] = t // 2
    return lengths


def make_ids(batch, t, first, last, pad, low, high, gen):
    ids = torch.randint(low, high, (batch, t), generator=gen)
    keep = torch.zeros(batch, t, dtype=torch.long)
    for row, n in enumerate(valid_lengths(batch, t)):
        ids[row, 0], ids[row, n - 1] = first, last
        ids[row, n:] = pad
        keep[row, :n] = 1
    return ids, keep


def adamw(model):
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=1e-4)


def megabytes(params):
    return sum(p.numel() * p.element_size() for p in params) / 2**20


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def report(name, seconds, **extra):
    line = {"name": name, "impl": "pytorch", "threads": torch.get_num_threads(), "seconds": round(seconds, 4)}
    line.update(extra)
    line["peak_rss_mb"] = round(peak_rss_mb())
    print(json.dumps(line), flush=True)


def median_of(n, f):
    """One warm-up call, then the median of n calls of f (which returns a dict of phase times)."""
    f(True)
    runs = [f(False) for _ in range(n)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def time_steps(model, inputs, steps, label):
    opt = adamw(model)

    def step(first):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        t1 = time.perf_counter()
        loss, parts = model(*inputs)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        losses = " ".join(f"{k}={v:.4f}" for k, v in parts.items())
        print(f"{label} {'initial' if first else 'step'} losses: {losses} total={loss.item():.4f}"
              f" (forward {t2 - t1:.3f} s, backward {t3 - t2:.3f} s, optimizer {t4 - t3:.3f} s)",
              file=sys.stderr, flush=True)
        return {"seconds": t4 - t0, "forward_s": t2 - t1, "backward_s": t3 - t2, "optimizer_s": t4 - t3}

    return median_of(steps, step)


def run_part(a):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(a.batch, 257, VISION, generator=gen)  # frozen EVA ViT-g/14 output
    if a.part == "stage1":
        t = a.text_len or 32
        ids, keep = make_ids(a.batch, t, CLS, SEP, BERT_PAD, 1000, DEC, gen)
        model = Stage1().train()
        times = time_steps(model, (features, ids, keep), a.steps, "stage1")
        extra = {}
    else:
        t = a.text_len or 24
        ids, keep = make_ids(a.batch, t, OPT_BOS, OPT_NEWLINE, OPT_PAD, 4, 50265, gen)
        dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[a.opt_dtype]
        t0 = time.perf_counter()
        model = Stage2(a.layers, dtype).train()
        print(f"stage2: built the model in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        times = time_steps(model, (features, ids, keep), a.steps, "stage2")
        extra = {"opt_layers": a.layers, "opt_dtype": a.opt_dtype}
    seconds = times.pop("seconds")
    times = {k: round(v, 4) for k, v in times.items()}
    report(f"train_{a.part}", seconds, batch=a.batch, text_len=t, steps=a.steps, **times, **extra,
           trainable_mb=round(megabytes(p for p in model.parameters() if p.requires_grad)),
           weights_mb=round(megabytes(model.parameters())))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="all", choices=["stage1", "stage2", "all"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--text-len", type=int, default=None, help="stage 1: 32, stage 2: 24")
    ap.add_argument("--steps", type=int, default=None, help="timed steps after one warm-up (3; --quick: 1)")
    ap.add_argument("--layers", type=int, default=None, help="OPT layers in stage 2 (32; --quick: 4)")
    ap.add_argument("--opt-dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.part == "all":
        forward = [f"--threads={a.threads}", f"--batch={a.batch}", f"--opt-dtype={a.opt_dtype}"]
        forward += [f"--{k.replace('_', '-')}={v}" for k, v in
                    (("text_len", a.text_len), ("steps", a.steps), ("layers", a.layers)) if v is not None]
        forward += ["--quick"] if a.quick else []
        status = 0
        for part in ("stage1", "stage2"):
            r = subprocess.run([sys.executable, os.path.abspath(__file__), "--part", part] + forward,
                               stdout=subprocess.PIPE, text=True)
            sys.stdout.write(r.stdout)
            sys.stdout.flush()
            status = status or r.returncode
        sys.exit(status)
    a.steps = a.steps if a.steps is not None else (1 if a.quick else 3)
    a.layers = a.layers if a.layers is not None else (4 if a.quick else 32)
    torch.set_num_threads(a.threads)
    run_part(a)


if __name__ == "__main__":
    main()
