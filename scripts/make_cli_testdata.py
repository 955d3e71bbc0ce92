#!/usr/bin/env python3
"""Writes tests/data/cli/: small tokenizers that fit the fixture models' vocabularies, so that the
pipeline and CLI tests can run the tiny Hugging Face fixtures end to end (text in, text out).

  opt/  vocab.json, merges.txt, tokenizer_config.json: a GPT-2 style byte-level BPE of 127 tokens
        (OPT's special tokens at 0-3, single characters, then merges learnt on a few captions and
        questions); id 127 is left to the <image> placeholder as in the fixture config.
  t5/   spiece.model: a SentencePiece unigram model of 120 pieces with T5's ids (pad 0, </s> 1,
        <unk> 2), trained with the real spm_train (Debian package `sentencepiece`).
  itm/  vocab.txt: a BERT-style uncased WordPiece vocabulary of 64 entries (the retrieval fixture's
        Q-Former vocabulary size).
Needs: python3, spm_train. The tests read the files; they never run this script.
"""
import collections
import json
import os
import subprocess
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "cli")
CORPUS = [
    "a photo of a cat sitting on a red sofa",
    "a dog running on the beach next to the sea",
    "Question: what is the cat doing? Answer: sleeping",
    "Question: what color is the car? Answer: red",
    "a man riding a horse in a field of grass",
    "two people standing next to a train at the station",
]


def byte_to_unicode():
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def make_opt():
    b2u = byte_to_unicode()
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    chars = " abcdefghijklmnopqrstuvwxyzQA.,?!:'-0123456789"
    for c in chars:
        vocab.setdefault(b2u[ord(c)], len(vocab))
    # words as GPT-2's pre-tokenizer splits them (a leading space joins the word)
    words = collections.Counter()
    for line in CORPUS:
        for i, w in enumerate(line.replace("?", " ?").replace(":", " :").split(" ")):
            if w:
                words[tuple(b2u[b] for b in ((" " if i else "") + w).encode())] += 1
    merges = []
    while len(vocab) < 127:
        pairs = collections.Counter()
        for w, n in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append(f"{a} {b}")
        vocab[a + b] = len(vocab)
        new = collections.Counter()
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == (a, b):
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += n
        words = new
    d = os.path.join(ROOT, "opt")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"add_bos_token": True, "bos_token": "</s>", "eos_token": "</s>", "pad_token": "<pad>",
                   "unk_token": "</s>", "tokenizer_class": "GPT2Tokenizer"}, f, indent=2)


def make_t5():
    d = os.path.join(ROOT, "t5")
    os.makedirs(d, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w") as f:
            f.write("\n".join(CORPUS * 4) + "\n")
        subprocess.run(["spm_train", f"--input={corpus}", f"--model_prefix={tmp}/spiece", "--model_type=unigram",
                        "--vocab_size=120", "--pad_id=0", "--eos_id=1", "--unk_id=2", "--bos_id=-1",
                        "--character_coverage=1.0", "--hard_vocab_limit=false"], check=True, capture_output=True)
        os.replace(os.path.join(tmp, "spiece.model"), os.path.join(d, "spiece.model"))


def make_itm():
    d = os.path.join(ROOT, "itm")
    os.makedirs(d, exist_ok=True)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstuvwxyz") + \
             ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"] + [".", ",", "?"]
    tokens += [f"[unused{i}]" for i in range(64 - len(tokens))]
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(tokens) + "\n")


if __name__ == "__main__":
    make_opt()
    make_t5()
    make_itm()
