#!/usr/bin/python3
"""PyTorch reference for `npm run bench caption` (bench/pytorch.ts runs it in a child process).

Trains gradpool's default captioner (docs/CAPTIONING.md, "The captioner, exactly") the
PyTorch way: nn.Conv2d(3x3, padding 1) / ReLU / MaxPool2d(2) blocks, the map flattened
(CHW), nn.Linear to E and nn.LayerNorm(E) -> the image vector, fed as the first input of
an nn.LSTM(E, H) (seq-first), then nn.Embedding(V, E) of <start> and the words;
nn.Linear(H, V); mean cross-entropy over the real targets (the words and <end>, <pad>
ignored); global-norm gradient clipping at 5 and Adam (lr 1e-3, betas 0.9/0.999, eps
1e-8), gradpool's caption defaults. The pixels enter as v/255 - 0.5, converted from bytes
every step as gradpool does.

The batches are synthetic, shaped like the shapes dataset's: random 8-bit images, and
captions of 4 words (one object, probability 1/3) or 10 words (two objects) over the
vocabulary's words, then <end> (a convolution's cost does not depend on the pixels).

Prints one JSON line like bench/torch_lm.py's, with imagesPerSecond (the unit of the
caption bench) and tokensPerSecond (scored tokens: words and <end>).

  /usr/bin/python3 bench/torch_caption.py --cnn 16,32,64 --size 64 --embed 64 --hidden 256 --vocab 21 --batch 32 --steps 10 --threads 1
"""

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from torch_lm import blas_info  # the BLAS torch's sgemm runs on, reported the same way

LR = 1e-3
CLIP = 5.0
PAD, START, END = 0, 1, 2  # model/caption.ts; id 3 is <unk>, words from 4


class Captioner(nn.Module):
    def __init__(self, channels, size, E, H, V):
        super().__init__()
        blocks, cin = [], 3
        for c in channels:
            blocks += [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            cin = c
        self.cnn = nn.Sequential(*blocks)
        side = size >> len(channels)
        self.proj = nn.Linear(cin * side * side, E)
        self.norm = nn.LayerNorm(E)
        self.embed = nn.Embedding(V, E)
        self.rnn = nn.LSTM(E, H)
        self.decode = nn.Linear(H, V)

    def forward(self, images, tokens):
        """images (B, 3, S, S); tokens (n+2, B): <start>, words, <end>, <pad>. Logits (n+1, B, V)."""
        v = self.norm(self.proj(self.cnn(images).flatten(1)))  # (B, E)
        x = torch.cat([v.unsqueeze(0), self.embed(tokens[:-1])])  # image, <start>, words: (n+2, B, E)
        out, _ = self.rnn(x)
        return self.decode(out[1:])  # h_t predicts tokens[t+1]; the image step predicts nothing


def batches(n, B, size, V, seed):
    """n synthetic batches: uint8 images (B, S, S, 3) as gradpool receives them, and token rows (12, B)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        images = torch.randint(0, 256, (B, size, size, 3), dtype=torch.uint8, generator=g)
        two = torch.rand(B, generator=g) >= 1 / 3
        tokens = torch.full((12, B), PAD, dtype=torch.long)
        tokens[0] = START
        for b in range(B):
            words = 10 if two[b] else 4
            tokens[1 : words + 1, b] = torch.randint(4, V, (words,), generator=g)
            tokens[words + 1, b] = END
        out.append((images, tokens))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cnn", required=True, help="output channels of each block, e.g. 16,32,64")
    p.add_argument("--size", type=int, required=True, help="image side S")
    p.add_argument("--embed", type=int, required=True, help="E")
    p.add_argument("--hidden", type=int, required=True, help="H")
    p.add_argument("--vocab", type=int, required=True, help="V (4 special tokens, then words)")
    p.add_argument("--batch", type=int, required=True, help="B (image, caption) pairs per step")
    p.add_argument("--steps", type=int, required=True, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--max-seconds", type=float, default=0, help="time budget: fewer timed steps (at least 1) past it, and the warm-up ends after half of it (0 = none)")
    a = p.parse_args()
    channels = [int(c) for c in a.cnn.split(",")]
    for name in ("size", "embed", "hidden", "batch", "steps", "threads"):
        if getattr(a, name) < 1:
            p.error(f"--{name} is {getattr(a, name)}; allowed: at least 1")
    if a.vocab < 5:
        p.error(f"--vocab is {a.vocab}; allowed: at least 5 (4 special tokens and a word)")
    if not channels or min(channels) < 1 or a.size % (1 << len(channels)):
        p.error(f"--cnn {a.cnn} with --size {a.size}: each block needs channels >= 1 and the side divisible by 2^blocks")

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Captioner(channels, a.size, a.embed, a.hidden, a.vocab)
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8)
    data = batches(8, a.batch, a.size, a.vocab, 1)

    def train_step(step):
        images, tokens = data[step % len(data)]
        pixels = images.permute(0, 3, 1, 2).float() / 255 - 0.5  # NHWC bytes -> NCHW, as gradpool's pixelRows
        logits = model(pixels, tokens)
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), tokens[1:].reshape(-1), ignore_index=PAD)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        return loss.item(), int((tokens[1:] != PAD).sum())

    budget = a.max_seconds if a.max_seconds > 0 else float("inf")
    step = 0
    begun = time.perf_counter()
    while step < a.warmup and not (step >= 1 and time.perf_counter() - begun > budget / 2):
        train_step(step)
        step += 1
    timed = scored = 0
    started = time.perf_counter()
    while timed < a.steps and not (timed >= 1 and time.perf_counter() - started > budget):
        loss, n = train_step(step)
        scored += n
        step += 1
        timed += 1
    seconds = time.perf_counter() - started

    print(json.dumps({
        "imagesPerSecond": timed * a.batch / seconds,
        "tokensPerSecond": scored / seconds,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "blas": blas_info(),
        "coretype": os.environ.get("OPENBLAS_CORETYPE") or None,
        "loss": loss,
        "cnn": channels, "size": a.size, "E": a.embed, "H": a.hidden, "V": a.vocab, "B": a.batch, "steps": timed,
        "mkldnn": torch.backends.mkldnn.is_available(),
    }))


if __name__ == "__main__":
    main()
