#!/usr/bin/python3
"""PyTorch reference for `npm run bench` (bench/pytorch.ts runs it in a child process).

Trains the model gradpool's bench trains, the PyTorch way: char-level
nn.Embedding(V, E) -> nn.LSTM(E, H) or nn.GRU(E, H) -> nn.Linear(H, V), mean
cross-entropy, global-norm gradient clipping and Adam with gradpool's defaults
(coordinator/config.ts TRAIN_DEFAULTS: lr 2e-3, clip 5; Adam betas 0.9/0.999,
eps 1e-8), truncated BPTT over B streams of T tokens with the state carried
(detached) from one chunk to the next. The corpus is bench/parallel.ts's
syntheticCorpus (the same LCG), cut into B contiguous streams.

Prints one JSON line: tokensPerSecond over the timed steps, the threads used,
torch's version, the BLAS library actually mapped into this process (from
/proc/self/maps, not torch's build settings), OPENBLAS_CORETYPE as set in this
process's environment and the core OpenBLAS reports, and the loss of the last
timed step (a sanity check that it trained).

  /usr/bin/python3 bench/torch_lm.py --cell lstm --embed 64 --hidden 256 --seq-len 64 --batch 32 --steps 10 --threads 1
"""

import argparse
import ctypes
import json
import os
import re
import time

import torch
import torch.nn.functional as F
from torch import nn

V = 65
LR = 2e-3
CLIP = 5.0


def synthetic_ids(n):
    """bench/parallel.ts syntheticCorpus: s = (s * 1103515245 + 12345) mod 2^32, id = s mod V."""
    ids = [0] * n
    s = 7
    for i in range(n):
        s = (s * 1103515245 + 12345) & 0xFFFFFFFF
        ids[i] = s % V
    return ids


class CharLM(nn.Module):
    def __init__(self, cell, E, H):
        super().__init__()
        self.embed = nn.Embedding(V, E)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](E, H)  # seq-first: (T, B, ·)
        self.decode = nn.Linear(H, V)

    def forward(self, x, state):
        out, state = self.rnn(self.embed(x), state)  # (T, B, H)
        return self.decode(out), state  # (T, B, V)


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p), ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def mapped_libraries(pattern):
    """Resolved paths of the shared objects mapped into this process whose file name matches pattern."""
    paths = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and re.search(pattern, os.path.basename(fields[-1])):
                path = os.path.realpath(fields[-1])
                if path not in paths:
                    paths.append(path)
    return paths


def sgemm_provider():
    """The library torch's sgemm calls resolve to: looked up from libtorch_cpu as the dynamic linker
    does (its dependencies in load order), then named by dladdr. Several BLAS libraries can be
    mapped at once (Debian's liblapack.so.3 from OpenBLAS pulls libopenblas in even when
    libblas.so.3 is the reference one), so the mapping alone does not say which one runs."""
    libc = ctypes.CDLL(None)
    for torch_cpu in mapped_libraries(r"^libtorch_cpu\.so"):
        lib = ctypes.CDLL(torch_cpu)
        for symbol in ("sgemm_", "cblas_sgemm"):
            try:
                address = ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value
            except AttributeError:
                continue
            info = DlInfo()
            if libc.dladdr(ctypes.c_void_p(address), ctypes.byref(info)) and info.dli_fname:
                return os.path.realpath(info.dli_fname.decode())
    return None


def openblas_core(paths):
    """OpenBLAS's own account of itself (config string, core it runs on) from the first path exporting it."""
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            return lib.openblas_get_config().decode(), lib.openblas_get_corename().decode()
        except (OSError, AttributeError):
            continue
    return None, None


def blas_info():
    """The BLAS torch's sgemm runs on: kind, resolved path, what else is mapped, and for OpenBLAS its config and core."""
    mapped = mapped_libraries(r"openblas|^libblas|mkl|blis|flexiblas")
    path = sgemm_provider()
    name = path or ""
    if "openblas" in name:
        kind = "openblas"
    elif "mkl" in os.path.basename(name):
        kind = "mkl"
    elif "blis" in os.path.basename(name):
        kind = "blis"
    elif "/blas/libblas.so" in name:
        kind = "reference"  # Debian's netlib BLAS (libblas3): unoptimized
    else:
        kind = "unknown"
    config, core = (None, None)
    if path:
        # Debian's openblas-pthread/libblas.so.3 forwards to libopenblas.so.0, which answers.
        config, core = openblas_core([path] + ([p for p in mapped if "libopenblas" in p] if kind == "openblas" else []))
        if config and kind == "unknown":
            kind = "openblas"
    return {"kind": kind, "path": path, "config": config, "core": core, "mapped": mapped}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cell", choices=["lstm", "gru"], required=True)
    p.add_argument("--embed", type=int, required=True, help="E")
    p.add_argument("--hidden", type=int, required=True, help="H")
    p.add_argument("--seq-len", type=int, required=True, help="T")
    p.add_argument("--batch", type=int, required=True, help="B")
    p.add_argument("--steps", type=int, required=True, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--max-seconds", type=float, default=0, help="time budget: fewer timed steps (at least 1) past it, and the warm-up ends after half of it (0 = none)")
    a = p.parse_args()
    for name in ("embed", "hidden", "seq_len", "batch", "steps", "threads"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} is {getattr(a, name)}; allowed: at least 1")

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    T, B = a.seq_len, a.batch
    total = a.warmup + a.steps
    per_stream = T * total + 1
    ids = torch.tensor(synthetic_ids(B * per_stream), dtype=torch.long).view(B, per_stream).t().contiguous()  # (L, B)

    model = CharLM(a.cell, a.embed, a.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8)
    state = None

    def train_step(step):
        nonlocal state
        x = ids[step * T : step * T + T]  # (T, B)
        y = ids[step * T + 1 : step * T + T + 1]
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.view(T * B, V), y.reshape(T * B))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        state = detach(state)
        return loss.item()

    # A slow BLAS (Debian's reference one) must not turn a few seconds into minutes.
    budget = a.max_seconds if a.max_seconds > 0 else float("inf")
    step = 0
    begun = time.perf_counter()
    while step < a.warmup and not (step >= 1 and time.perf_counter() - begun > budget / 2):
        train_step(step)
        step += 1
    timed = 0
    started = time.perf_counter()
    while timed < a.steps and not (timed >= 1 and time.perf_counter() - started > budget):
        loss = train_step(step)
        step += 1
        timed += 1
    seconds = time.perf_counter() - started

    print(json.dumps({
        "tokensPerSecond": timed * T * B / seconds,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "blas": blas_info(),
        "coretype": os.environ.get("OPENBLAS_CORETYPE") or None,
        "loss": loss,
        "cell": a.cell, "E": a.embed, "H": a.hidden, "T": T, "B": B, "steps": timed,
    }))


if __name__ == "__main__":
    main()
