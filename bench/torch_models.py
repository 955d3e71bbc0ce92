#!/usr/bin/env python3
"""PyTorch eager peer for bench_models: the same blip2-opt-2.7b shapes (ViT-g/14, Q-Former, OPT-2.7B)
with random weights, timed the same way, printing the same JSON keys with "impl": "pytorch".

Run with Debian's python3-torch (or any torch):
    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/torch_models.py --threads 2 [--part vit|qformer|opt|all]
Plain torch.nn layers; no transformers needed. Weights are random (no checkpoint is read)."""
import argparse
import json
import math
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def attention(q, k, v, heads, mask=None):
    b, lq, d = q.shape
    lk = k.shape[1]
    q = q.view(b, lq, heads, -1).transpose(1, 2)
    k = k.view(b, lk, heads, -1).transpose(1, 2)
    v = v.view(b, lk, heads, -1).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s + mask
    return (s.softmax(-1) @ v).transpose(1, 2).reshape(b, lq, -1)


class VitBlock(nn.Module):
    def __init__(self, d=1408, ff=6144, heads=16):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, ff), nn.Linear(ff, d)

    def forward(self, x):
        q, k, v = self.qkv(self.ln1(x)).chunk(3, -1)
        x = x + self.proj(attention(q, k, v, self.heads))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class Vit(nn.Module):
    def __init__(self, d=1408, layers=39):
        super().__init__()
        self.patch = nn.Conv2d(3, d, 14, 14)
        self.cls = nn.Parameter(torch.randn(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, 257, d))
        self.blocks = nn.ModuleList(VitBlock() for _ in range(layers))
        self.post = nn.LayerNorm(d)

    def forward(self, px):
        x = self.patch(px).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for b in self.blocks:
            x = b(x)
        return self.post(x)


class QFormerLayer(nn.Module):
    def __init__(self, cross, d=768, enc=1408, ff=3072, heads=12):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln1 = nn.LayerNorm(d, eps=1e-12)
        self.cross = cross
        if cross:
            self.cq, self.ck, self.cv, self.co = nn.Linear(d, d), nn.Linear(enc, d), nn.Linear(enc, d), nn.Linear(d, d)
            self.ln2 = nn.LayerNorm(d, eps=1e-12)
        self.fc1, self.fc2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.ln3 = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x, image):
        x = self.ln1(x + self.o(attention(self.q(x), self.k(x), self.v(x), self.heads)))
        if self.cross:
            x = self.ln2(x + self.co(attention(self.cq(x), self.ck(image), self.cv(image), self.heads)))
        return self.ln3(x + self.fc2(F.gelu(self.fc1(x))))


class OPTLayer(nn.Module):
    def __init__(self, d=2560, ff=10240, heads=32):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, ff), nn.Linear(ff, d)

    def forward(self, x, cache, mask):
        h = self.ln1(x)
        k, v = self.k(h), self.v(h)
        if cache:
            k, v = torch.cat([cache[0], k], 1), torch.cat([cache[1], v], 1)
        cache[:] = [k, v]
        x = x + self.o(attention(self.q(h), k, v, self.heads, mask))
        return x + self.fc2(F.relu(self.fc1(self.ln2(x))))


class OPT(nn.Module):
    def __init__(self, vocab=50272, d=2560, layers=32):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(2050, d)
        self.layers = nn.ModuleList(OPTLayer() for _ in range(layers))
        self.ln = nn.LayerNorm(d)

    def forward(self, x, caches):
        past = caches[0][0].shape[1] if caches[0] else 0
        n = x.shape[1]
        mask = torch.full((n, past + n), float("-inf")).triu(past + 1)
        x = x + self.pos(torch.arange(past, past + n) + 2)
        for layer, cache in zip(self.layers, caches):
            x = layer(x, cache, mask)
        return self.ln(x) @ self.embed.weight.t()


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def report(name, seconds, module, **extra):
    weights = sum(p.numel() for p in module.parameters()) * 4 / 2**20
    line = {"name": name, "impl": "pytorch", "threads": torch.get_num_threads(), "seconds": round(seconds, 4),
            "weights_mb": round(weights), "peak_rss_mb": round(peak_rss_mb())}
    line.update(extra)
    print(json.dumps(line), flush=True)


def median_of(n, f):
    f()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="all")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode-tokens", type=int, default=8)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    reps = 1 if a.quick else 3
    torch.manual_seed(0)
    with torch.no_grad():
        if a.part in ("vit", "all"):
            vit = Vit().eval()
            for batch in (1, 8):
                px = torch.randn(batch, 3, 224, 224)
                s = median_of(reps if batch == 1 else 1, lambda: vit(px))
                report(f"vit_g_forward_b{batch}", s / batch, vit, batch=batch, per="image")
            del vit
        if a.part in ("qformer", "all"):
            layers = nn.ModuleList(QFormerLayer(i % 2 == 0) for i in range(12)).eval()
            q, image = torch.randn(1, 32, 768), torch.randn(1, 257, 1408)

            def run():
                x = q
                for layer in layers:
                    x = layer(x, image)

            report("qformer_forward_b1", median_of(reps * 3, run), layers)
        if a.part in ("opt", "all"):
            lm = OPT().eval()
            x = torch.randn(1, 42, 2560) * 0.02
            report("opt_2.7b_prefill_42", median_of(reps, lambda: lm(x, [[] for _ in range(32)])), lm, tokens=42)
            caches = [[] for _ in range(32)]
            lm(x, caches)
            steps = []
            for t in range(a.decode_tokens):
                nxt = lm.embed(torch.tensor([[100 + t]]))
                s = time.perf_counter()
                lm(nxt, caches)
                steps.append(time.perf_counter() - s)
            report("opt_2.7b_decode_token", statistics.median(steps), lm, per="token", context=42 + a.decode_tokens)


if __name__ == "__main__":
    main()
