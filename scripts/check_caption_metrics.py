#!/usr/bin/env python3
"""Writes tests/data/caption_metrics/reference.json: what pycocoevalcap (the COCO caption
evaluation LAVIS reports) scores on a few hundred seeded (candidate, 5 references) pairs, for
tests/test_eval_metrics.cpp to compare include/blip2/eval/caption_metrics.hpp against.

  pairs       [candidate, [5 references]] per image, already tokenized (lower case, single spaces)
              and drawn from a small word grammar with random.Random(SEED)
  bleu        pycocoevalcap's Bleu(4): corpus BLEU-1..4 and each image's ("per_image")
  cider       pycocoevalcap's Cider (CIDEr-D): the corpus mean and each image's score
  tokenizer   raw captions and what pycocoevalcap's PTBTokenizer (Java, Stanford CoreNLP 3.4.1)
              makes of them; written only when `java` is on PATH

The tokenizer step is bypassed for the scores: the tokenized strings go to Bleu and Cider as they
are. The C++ test reads the file; it never runs this script. To run it:

  pip install --target /tmp/pce pycocoevalcap     # or: python3 -m venv v && v/bin/pip install pycocoevalcap
  PYTHONPATH=/tmp/pce python3 scripts/check_caption_metrics.py
"""
import importlib.metadata
import json
import os
import random
import shutil

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

SEED = 20240611
IMAGES = 240
OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "caption_metrics", "reference.json"))

SUBJECTS = [["man"], ["woman"], ["dog"], ["cat"], ["boy"], ["girl"], ["horse"], ["bird"], ["group", "of", "people"]]
ADJECTIVES = ["small", "large", "young", "old", "brown", "white", "black", "red", "happy"]
VERBS = [["sitting", "on"], ["standing", "next", "to"], ["running", "along"], ["lying", "on"], ["looking", "at"],
         ["walking", "across"], ["playing", "with"], ["jumping", "over"]]
OBJECTS = [["a", "bench"], ["a", "table"], ["the", "grass"], ["a", "car"], ["the", "beach"], ["a", "fence"],
           ["a", "ball"], ["the", "street"], ["a", "sofa"], ["the", "water"]]
PLACES = [["in", "a", "park"], ["at", "night"], ["near", "a", "building"], ["on", "a", "sunny", "day"], ["in", "the", "city"]]

# Raw captions for the tokenizer comparison: the punctuation, clitics and symbols coco_tokenize
# handles, in the forms captions take.
RAW_CAPTIONS = [
    "A man riding a horse, in a field.",
    "Two dogs' toys aren't here; the dog's bowl is red!",
    "\"A cat\" (sitting) on a [red] {sofa}...",
    "It's 3.5 feet tall -- and 1,000 years old: 10:30 a.m.",
    "I'm sure they'll go, we've done it, you'd see, they're here.",
    "A well-known t-shirt - and/or a U.S. flag at 50% for $5.",
    "Can't won't don't gonna  multiple   spaces 'quoted' `back` ``double''",
    "Hello?! Wow!!! ok... end.",
    "The 1990's cars & trucks #1 x+y=z a*b at&t",
    "Mr. Smith and Dr. Who went to St. Louis.",
    "A horse. A dog is here. the cat. sits",
    "cannot gotta wanna lemme gimme",
    "a -dog- and dog- -x 5-year-old . 1.5. end",
    "an 18-wheeler, 2 ft. long",
    "A child with a toy--a teddy bear.",
    "A MAN\u2019s hat \u201cquoted\u201d \u2014 dash \u2026 end",
    "CAF\u00c9 \u00c9COLE na\u00efve",
    "a bus parked on the side of a road.",
    "Two giraffes standing next to each other in a field .",
    "A close up of a pizza on a plate",
    "A kitchen with a stove, a sink, and a refrigerator.",
]


def phrase(rng, scene):
    subject, verb, obj, place, adjective = scene
    words = ["a" if rng.random() < 0.8 else "the"]
    if rng.random() < 0.6:
        words.append(adjective if rng.random() < 0.7 else rng.choice(ADJECTIVES))
    words += subject
    words += verb if rng.random() < 0.8 else rng.choice(VERBS)
    words += obj if rng.random() < 0.8 else rng.choice(OBJECTS)
    if rng.random() < 0.5:
        words += place if rng.random() < 0.7 else rng.choice(PLACES)
    return words


def candidate(rng, scene):
    words = phrase(rng, scene)
    kind = rng.random()
    if kind < 0.15 and len(words) > 3:  # a word dropped
        del words[rng.randrange(len(words))]
    elif kind < 0.25:  # repeated n-grams, to exercise clipping
        words = words[:3] * rng.randint(2, 3)
    elif kind < 0.32:  # too short: the brevity penalty
        words = words[: rng.randint(1, 3)]
    elif kind < 0.4:  # neighbours swapped
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def make_pairs():
    rng = random.Random(SEED)
    pairs = []
    for i in range(IMAGES):
        scene = (rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(PLACES), rng.choice(ADJECTIVES))
        refs = [" ".join(phrase(rng, scene)) for _ in range(5)]
        if i % 40 == 0:
            cand = refs[0]  # identical to a reference
        elif i % 97 == 5:
            cand = ""  # nothing generated
        else:
            cand = candidate(rng, scene)
        pairs.append([cand, refs])
    return pairs


def ptb_tokenized(captions):
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenized = PTBTokenizer().tokenize({i: [{"caption": c}] for i, c in enumerate(captions)})
    return [[c, tokenized[i][0]] for i, c in enumerate(captions)]


def main():
    pairs = make_pairs()
    gts = {i: refs for i, (_, refs) in enumerate(pairs)}
    res = {i: [cand] for i, (cand, _) in enumerate(pairs)}
    bleu, bleu_per_image = Bleu(4).compute_score(gts, res, verbose=0)
    cider, cider_per_image = Cider().compute_score(gts, res)
    out = {
        "pycocoevalcap": importlib.metadata.version("pycocoevalcap"),
        "seed": SEED,
        "pairs": pairs,
        "bleu": {"corpus": list(bleu), "per_image": [list(image) for image in zip(*bleu_per_image)]},
        "cider": {"corpus": float(cider), "per_image": [float(s) for s in cider_per_image]},
    }
    if shutil.which("java"):
        out["tokenizer"] = ptb_tokenized(RAW_CAPTIONS)
    else:
        print("java not found: no tokenizer section")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"{OUT}: {len(pairs)} pairs, BLEU {[round(b, 4) for b in bleu]}, CIDEr {cider:.4f}")


if __name__ == "__main__":
    main()
