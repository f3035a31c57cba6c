#!/usr/bin/python3
"""PyTorch golden values for gradpool's parity test (test/unit/pytorch-parity.test.ts).

How to run (from the repository root, with Debian's PyTorch 1.13 -- /usr/bin/python3,
not whatever python3 comes first on PATH):

    # 1. gradpool-written model files (needs the TypeScript sources; see make_gradpool_file.ts)
    npx tsc --outDir /tmp/gradpool-golden --rootDir . --module nodenext --moduleResolution nodenext \
        --target es2022 --strict --skipLibCheck --types node test/golden/make_gradpool_file.ts
    node /tmp/gradpool-golden/test/golden/make_gradpool_file.js
    # 2. everything else
    /usr/bin/python3 test/golden/make_golden.py

    # Eval loss of any gradpool-written model file over a text, as JSON {"evalLoss": ...}:
    /usr/bin/python3 test/golden/make_golden.py --eval-gradpool FILE TEXT

What it produces, for each cell of CELLS (2 layers, E=5, H=6, V=11):
  test/golden/<cell>.safetensors   PyTorch's float32 weights (default init, seeded) under the
                                   state-dict names of {embedding, rnn, decoder}, with gradpool
                                   metadata (config, the 11-character vocabulary, tokens "char")
  test/golden/<cell>.json          one chunk of T=4 steps over B=3 streams: tokens (time-major,
                                   (T+1)*B), initial states in gradpool's layout
                                   ((l*S+s)*B+b)*H+j, summed cross-entropy "loss", "logits"
                                   (T*B, V) row t*B+b, "finalStates", "grads" of every
                                   state-dict tensor (row-major), and "evalLoss": the mean NLL
                                   of every token of text.txt after the first, fed as one
                                   stream from a zero state
  test/golden/gradpool-<cell>.json {"evalLoss"} of test/golden/gradpool-<cell>.safetensors
                                   (written in step 1) over text.txt

Golden values are computed in float64 from the same float32 weights and states that
the files hold, so they are the exact function of what gradpool reads. Deterministic:
every random draw comes from a torch.Generator seeded per cell. Only torch, numpy,
json and struct are used; safetensors is written and read by hand.
"""

import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
CELLS = ['rnn', 'lstm', 'gru-reset-after']
L, E, H, T, B = 2, 5, 6, 4, 3
VOCAB = [' ', '.', 'a', 'e', 'h', 'i', 'l', 'n', 'o', 's', 't']
V = len(VOCAB)
# gradpool's defaults for keys a gradpool.config may omit (model/config.ts)
DEFAULTS = {'cell': 'lstm', 'layers': 1, 'hidden': 256, 'embed': 64, 'layerNorm': False, 'normStabilizer': 0}


class CharModel(nn.Module):
    """gradpool's network as PyTorch modules: embedding -> stacked RNN -> linear decoder."""

    def __init__(self, cell, vocab_size, embed, hidden, layers):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed)
        if cell == 'rnn':
            self.rnn = nn.RNN(embed, hidden, layers, nonlinearity='tanh')
        elif cell == 'lstm':
            self.rnn = nn.LSTM(embed, hidden, layers)
        elif cell == 'gru-reset-after':
            self.rnn = nn.GRU(embed, hidden, layers)
        else:
            raise ValueError(f'cell {cell!r} has no PyTorch module; allowed: {", ".join(CELLS)}')
        self.decoder = nn.Linear(hidden, vocab_size)

    def forward(self, tokens, state=None):  # tokens (T, B) -> logits (T, B, V)
        out, state = self.rnn(self.embedding(tokens), state)
        return self.decoder(out), state


def write_safetensors(path, tensors, metadata):
    """tensors: name -> float32 ndarray. Sorted by name, header space-padded to 8 bytes."""
    header = {'__metadata__': metadata}
    blobs, offset = [], 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype='<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(tensors[name].shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode('utf-8')
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text + b''.join(blobs))


def read_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n].decode('utf-8'))
    metadata = header.pop('__metadata__', {})
    data = raw[8 + n:]
    tensors = {}
    for name, info in header.items():
        if info['dtype'] != 'F32':
            raise ValueError(f'{path}: tensor {name} has dtype {info["dtype"]}; only F32 is supported')
        begin, end = info['data_offsets']
        tensors[name] = np.frombuffer(data[begin:end], dtype='<f4').reshape(info['shape']).copy()
    return tensors, metadata


def gradpool_metadata(cell):
    config = {'cell': cell, 'layers': L, 'hidden': H, 'embed': E}  # the rest are gradpool's defaults
    return {'gradpool.config': json.dumps(config), 'gradpool.vocab': json.dumps(VOCAB), 'gradpool.tokens': 'char'}


def load_model(path):
    """A gradpool model file (either writer) as a float64 CharModel, plus its vocabulary."""
    tensors, metadata = read_safetensors(path)
    config = {**DEFAULTS, **json.loads(metadata['gradpool.config'])}
    if config['layerNorm']:
        raise ValueError(f'{path}: layerNorm models have no PyTorch module')
    vocab = json.loads(metadata['gradpool.vocab'])
    model = CharModel(config['cell'], len(vocab), config['embed'], config['hidden'], config['layers'])
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    return model.double(), vocab


def eval_loss(model, vocab, text):
    """Mean NLL (nats) of every token after the first, the whole text one stream from zero state."""
    index = {ch: i for i, ch in enumerate(vocab)}
    ids = torch.tensor([index[ch] for ch in text], dtype=torch.long)
    with torch.no_grad():
        logits, _ = model(ids[:-1].unsqueeze(1))
        return F.cross_entropy(logits.reshape(-1, len(vocab)), ids[1:], reduction='mean').item()


def to_gradpool_states(state, cell):
    """PyTorch's (L, B, H) h (and c) as gradpool's flat ((l*S+s)*B+b)*H+j."""
    if cell == 'lstm':
        h, c = state
        return torch.stack([h, c], dim=1).reshape(-1).tolist()
    return state.reshape(-1).tolist()


def make_golden(cell, seed, text):
    torch.manual_seed(seed)
    model32 = CharModel(cell, V, E, H, L)  # float32, PyTorch's default init
    tensors = {k: v.detach().numpy().copy() for k, v in model32.state_dict().items()}
    path = os.path.join(HERE, f'{cell}.safetensors')
    write_safetensors(path, tensors, gradpool_metadata(cell))
    model, vocab = load_model(path)  # float64, from exactly the float32 values on disk

    gen = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(0, V, (T + 1, B), generator=gen)
    # Initial states: random, non-zero, representable in float32 (gradpool's state dtype).
    h0 = (0.5 * torch.randn(L, B, H, generator=gen)).float().double()
    c0 = (0.5 * torch.randn(L, B, H, generator=gen)).float().double()
    state = (h0, c0) if cell == 'lstm' else h0

    logits, final = model(tokens[:-1], state)
    loss = F.cross_entropy(logits.reshape(T * B, V), tokens[1:].reshape(T * B), reduction='sum')
    model.zero_grad()
    loss.backward()
    golden = {
        'cell': cell,
        'T': T,
        'B': B,
        'tokens': tokens.reshape(-1).tolist(),
        'states': to_gradpool_states(state, cell),
        'loss': loss.item(),
        'logits': logits.detach().reshape(-1).tolist(),
        'finalStates': to_gradpool_states(tuple(s.detach() for s in final) if cell == 'lstm' else final.detach(), cell),
        'grads': {name: p.grad.reshape(-1).tolist() for name, p in model.named_parameters()},
        'evalLoss': eval_loss(model, vocab, text),
    }
    with open(os.path.join(HERE, f'{cell}.json'), 'w') as f:
        json.dump(golden, f, indent=1)
        f.write('\n')


def main(argv):
    if len(argv) >= 1 and argv[0] == '--eval-gradpool':
        if len(argv) != 3:
            sys.exit('usage: make_golden.py --eval-gradpool FILE TEXT')
        model, vocab = load_model(argv[1])
        with open(argv[2], encoding='utf-8') as f:
            print(json.dumps({'evalLoss': eval_loss(model, vocab, f.read())}))
        return
    if argv:
        sys.exit(f'unknown arguments {argv}; usage: make_golden.py [--eval-gradpool FILE TEXT]')
    with open(os.path.join(HERE, 'text.txt'), encoding='utf-8') as f:
        text = f.read()
    assert set(text) <= set(VOCAB), f'text.txt has characters outside the vocabulary: {sorted(set(text) - set(VOCAB))}'
    for i, cell in enumerate(CELLS):
        make_golden(cell, 1000 + i, text)
        written = os.path.join(HERE, f'gradpool-{cell}.safetensors')
        if os.path.exists(written):
            model, vocab = load_model(written)
            with open(os.path.join(HERE, f'gradpool-{cell}.json'), 'w') as f:
                json.dump({'evalLoss': eval_loss(model, vocab, text)}, f)
                f.write('\n')
        else:
            print(f'skipping gradpool-{cell}.json: {written} does not exist (run make_gradpool_file.ts first)', file=sys.stderr)


if __name__ == '__main__':
    torch.set_num_threads(1)  # summation order, hence the last bits, does not depend on the machine's cores
    main(sys.argv[1:])
