#!/usr/bin/env python3
"""PyTorch eager peer for bench_caption: transformers' Blip2ForConditionalGeneration with the
blip2-opt-2.7b shapes and random weights captions one 224-pixel image (BlipImageProcessor), greedy
and with 5 beams, 30 new tokens (min_new_tokens = max_new_tokens); the same JSON keys with
"impl": "pytorch". Prefill is the language model's first forward call inside generate, decode the
calls after it.

    OMP_WAIT_POLICY=PASSIVE PYTHONPATH=<transformers> /usr/bin/python3 bench/torch_caption.py --threads 2
Measured with Debian's python3-torch 1.13 and transformers 4.40.2 (pip install --target)."""
import argparse
import json
import os
import resource
import time

import torch
from PIL import Image
from transformers import Blip2Config, Blip2ForConditionalGeneration, BlipImageProcessor, OPTConfig


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--image", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "images", "chelsea.png"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    text = OPTConfig(vocab_size=50272, hidden_size=2560, num_hidden_layers=32, ffn_dim=10240, num_attention_heads=32,
                     word_embed_proj_dim=2560, max_position_embeddings=2048)
    device = torch.device(args.device)
    config = Blip2Config(text_config=text.to_dict(), num_query_tokens=32)
    if device.type == "cuda":  # build the 3.8 B parameters on the GPU directly (torch >= 2.0)
        with device:
            model = Blip2ForConditionalGeneration(config).eval()
    else:
        model = Blip2ForConditionalGeneration(config).eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"initialised in {time.perf_counter() - t0:.1f} s", flush=True, file=__import__("sys").stderr)
    processor = BlipImageProcessor(size={"height": 224, "width": 224})

    calls = []
    lm = model.language_model
    orig = lm.forward

    def timed_forward(*a, **k):
        s = time.perf_counter()
        r = orig(*a, **k)
        sync()
        calls.append(time.perf_counter() - s)
        return r

    lm.forward = timed_forward
    with torch.no_grad():
        for beams in (1, 5):
            calls.clear()
            t = time.perf_counter()
            pixels = processor(Image.open(args.image).convert("RGB"), return_tensors="pt").pixel_values.to(device)
            sync()
            preprocess = time.perf_counter() - t
            t = time.perf_counter()
            features = model.vision_model(pixel_values=pixels).last_hidden_state
            sync()
            vision = time.perf_counter() - t
            t = time.perf_counter()
            queries = model.query_tokens.expand(1, -1, -1)
            q = model.qformer(query_embeds=queries, encoder_hidden_states=features,
                              encoder_attention_mask=torch.ones(features.shape[:-1], dtype=torch.long, device=device)).last_hidden_state
            lm_inputs = model.language_projection(q)
            sync()
            qformer = time.perf_counter() - t
            bos = torch.tensor([[text.bos_token_id]], device=device)
            embeds = torch.cat([lm_inputs, lm.get_input_embeddings()(bos)], dim=1)
            out = lm.generate(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:-1], dtype=torch.long, device=device),
                              num_beams=beams, max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False)
            prefill, decode = calls[0], sum(calls[1:])
            print(json.dumps({"name": "caption_greedy" if beams == 1 else "caption_beam5", "impl": "pytorch",
                              "device": args.device, "weights": "f32", "threads": args.threads, "new_tokens": int(out.shape[1]),
                              "seconds": round(preprocess + vision + qformer + prefill + decode, 3),
                              "preprocess": round(preprocess, 3), "vision": round(vision, 3), "qformer": round(qformer, 3),
                              "prefill": round(prefill, 3), "decode": round(decode, 3),
                              "decode_tokens_per_s": round((len(calls) - 1) / decode, 3),
                              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}), flush=True)


if __name__ == "__main__":
    main()
