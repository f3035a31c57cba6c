"""BLEU fixtures for test/unit/bleu.test.ts: corpus-level BLEU-1..4 from NLTK's
corpus_bleu (no smoothing) on caption corpora with several references per item,
including short, empty-match, brevity-penalty and repeated-word cases.

    /usr/bin/python3 test/golden/make_bleu_golden.py   # Debian python3-nltk 3.8
writes test/golden/bleu.json."""
import json
import os
import random

from nltk.translate.bleu_score import corpus_bleu

WEIGHTS = [(1.0,), (0.5, 0.5), (1 / 3, 1 / 3, 1 / 3), (0.25, 0.25, 0.25, 0.25)]
WORDS = "a small large red green blue circle square triangle left of right above below".split()


def case(name, refs, hyps):
    scores = corpus_bleu(refs, hyps, weights=WEIGHTS)
    return {"name": name, "references": refs, "hypotheses": hyps, "bleu": [float(s) for s in scores]}


rng = random.Random(1)
cases = [
    case("exact", [[["a", "small", "red", "circle"]]], [["a", "small", "red", "circle"]]),
    case("two references, both orders",
         [[["a", "small", "red", "circle", "left", "of", "a", "large", "blue", "square"],
           ["a", "large", "blue", "square", "right", "of", "a", "small", "red", "circle"]]],
         [["a", "large", "blue", "square", "left", "of", "a", "small", "red", "circle"]]),
    case("short hypothesis (brevity penalty)", [[["a", "small", "red", "circle", "above", "a", "large", "green", "triangle"]]],
         [["a", "small", "red", "circle"]]),
    case("too short for 4-grams", [[["a", "small", "red", "circle"]]], [["a", "small"]]),
    case("repeated words are clipped", [[["a", "red", "circle"]]], [["a", "a", "a", "a", "red"]]),
    case("no unigram matches", [[["a", "red", "circle"]]], [["blue", "square"]]),
    case("no 4-gram matches", [[["a", "small", "red", "circle", "left", "of", "a", "large", "blue", "square"]]],
         [["a", "small", "red", "square", "left", "of", "a", "large", "red", "circle"]]),
]
for n in range(3):
    refs, hyps = [], []
    for _ in range(40):
        k = rng.randint(1, 3)
        refs.append([[rng.choice(WORDS) for _ in range(rng.randint(4, 10))] for _ in range(k)])
        base = rng.choice(refs[-1])
        hyps.append([w if rng.random() < 0.7 else rng.choice(WORDS) for w in base[: rng.randint(2, len(base) + 1)]])
    cases.append(case(f"random corpus {n}", refs, hyps))

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bleu.json")
with open(out, "w") as f:
    json.dump({"generator": "test/golden/make_bleu_golden.py", "nltk": __import__("nltk").__version__, "cases": cases}, f, indent=1)
print(f"wrote {out}: {len(cases)} cases")
