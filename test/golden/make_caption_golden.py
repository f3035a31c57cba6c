#!/usr/bin/python3
"""PyTorch golden values for a whole captioner (test/unit/caption-parity.test.ts): the
Show-and-Tell model of docs/CAPTIONING.md in float64 -- CNN encoder, projection, layer
norm, the image vector as the decoder's first input, <start> and the words, the summed
cross-entropy of the words and <end> with <pad> masked -- with the loss, the logits and
the gradient of every tensor of the model file.

    /usr/bin/python3 test/golden/make_caption_golden.py   # Debian python3-torch 1.13

For each case of CASES (a cell, with or without layer norm in the decoder; and one
captioner over D=6 precomputed features per image, whose encoder is a linear layer and
the same layer norm, no CNN) it writes
  test/golden/caption-<case>.safetensors  the float32 weights, in gradpool's caption
                                          model-file format (PyTorch state-dict names
                                          encoder.conv0.weight ..., gradpool metadata)
  test/golden/caption-<case>.json         a block of B=3 images (S*S*3 bytes each, RGB,
                                          row-major) and captions ((T+1)*B ids,
                                          time-major, <start> first, <pad> after <end>),
                                          (or "features": D float32 values per image),
                                          the summed loss, its target count, the logits
                                          (T*B, V) row t*B+b, and "grads" of every tensor
                                          (row-major, the file's names)

The decoder of rnn, lstm and gru-reset-after without layer norm is PyTorch's own nn.RNN,
nn.LSTM, nn.GRU; the other cases (gradpool's gru is reset-before, and PyTorch has no
layer-norm cells) run a cell written here from docs/MODEL.md ("One step of one layer"),
which the script first checks against the PyTorch modules where both exist. It also checks
that each fixture is sensitive to what it should catch: a layer-norm epsilon of 1e-6
instead of 1e-5 (in the encoder, and in the decoder's cells) must move some gradient by
more than ten times the test's tolerance.

Golden values are computed in float64 from exactly the float32 weights the files hold.
Deterministic: every draw comes from a torch.Generator seeded per case. Only torch, json
and struct are used; safetensors is written by hand (as make_golden.py does).
"""

import json
import math
import os
import struct

import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
# (case, cell, layerNorm, features): PyTorch-module cells first, then gradpool-only ones.
CASES = [
    ('rnn', 'rnn', False, 0), ('lstm', 'lstm', False, 0), ('gru-reset-after', 'gru-reset-after', False, 0), ('gru', 'gru', False, 0),
    ('rnn-ln', 'rnn', True, 0), ('lstm-ln', 'lstm', True, 0), ('gru-ln', 'gru', True, 0), ('gru-reset-after-ln', 'gru-reset-after', True, 0),
    ('lstm-features', 'lstm', False, 6),
]
STOCK = {'rnn', 'lstm', 'gru-reset-after'}  # cells with a PyTorch module
SIZE, CNN, E, H, L, B = 8, [3, 4], 4, 5, 2, 3
VOCAB = ['<pad>', '<start>', '<end>', '<unk>', 'a', 'red', 'blue', 'circle', 'square']
V = len(VOCAB)
PAD, START, END = 0, 1, 2
WORDS = [3, 1, 2]  # caption lengths: one fills T, the others end early and are padded
T = max(WORDS) + 1  # the most tokens a caption has: its words and <end>
EPS = 1e-5  # nn.LayerNorm's and gradpool's
RTOL = 1e-4  # the test's tolerance (caption-parity.test.ts)
# The projection's weights scaled down so that the image vector's variance before its layer
# norm is ~1e-3: then LN's epsilon matters at the test's tolerance (checked below).
PROJ_SCALE = 0.1
# Likewise the recurrent weights of layer-norm cells, for the variance of h * W_hh.
HH_SCALE = 0.1


def gates(cell):
    return {'rnn': 1, 'lstm': 4, 'gru': 3, 'gru-reset-after': 3}[cell]


class Encoder(nn.Module):
    """Conv2d(3x3, pad 1) + ReLU + MaxPool2d(2) blocks, flatten (CHW), Linear, LayerNorm;
    over `features` precomputed values per image, only the Linear and the LayerNorm."""

    def __init__(self, eps=EPS, features=0):
        super().__init__()
        self.features = features
        cin = 3
        for i, cout in enumerate(CNN if not features else []):
            setattr(self, f'conv{i}', nn.Conv2d(cin, cout, 3, padding=1))
            cin = cout
        side = SIZE >> len(CNN)
        self.proj = nn.Linear(features or cin * side * side, E)
        self.norm = nn.LayerNorm(E, eps=eps)

    def forward(self, rgb):  # (B, S, S, 3) bytes -> (B, E); features: (B, D) -> (B, E)
        if self.features:
            return self.norm(self.proj(rgb.double()))
        x = (rgb.double() / 255 - 0.5).permute(0, 3, 1, 2)
        for i in range(len(CNN)):
            x = F.max_pool2d(F.relu(getattr(self, f'conv{i}')(x)), 2)
        return self.norm(self.proj(torch.flatten(x, 1)))


def layer_norm(a, gamma, beta, eps):
    mu = a.mean(-1, keepdim=True)
    var = ((a - mu) ** 2).mean(-1, keepdim=True)
    return gamma * (a - mu) / torch.sqrt(var + eps) + beta


class Cells(nn.Module):
    """gradpool's stacked cells (docs/MODEL.md) over the file's tensors, named as in the file."""

    def __init__(self, cell, layer_norm_on, eps=EPS):
        super().__init__()
        self.cell, self.ln, self.eps = cell, layer_norm_on, eps
        G = gates(cell) * H
        for k in range(L):
            In = E if k == 0 else H
            for name, shape in [('weight_ih', (G, In)), ('weight_hh', (G, H)), ('bias_ih', (G,)), ('bias_hh', (G,))]:
                setattr(self, f'{name}_l{k}', nn.Parameter(torch.empty(shape)))
            if layer_norm_on:
                groups = [('ih', G), ('hh', G)] + ([('cell', H)] if cell == 'lstm' else [])
                for g, n in groups:
                    setattr(self, f'ln_{g}_weight_l{k}', nn.Parameter(torch.empty(n)))
                    setattr(self, f'ln_{g}_bias_l{k}', nn.Parameter(torch.empty(n)))

    def p(self, name, k):
        return getattr(self, f'{name}_l{k}')

    def norm(self, a, group, k, part=slice(None)):
        if not self.ln:
            return a
        return layer_norm(a, self.p(f'ln_{group}_weight', k)[part], self.p(f'ln_{group}_bias', k)[part], self.eps)

    def step(self, k, x, h, c):
        """One layer's step for rows x (B, In), h, c (B, H) -> h', c'."""
        G = gates(self.cell) * H
        # The file's GRU z rows are ours negated (PyTorch's z' = 1 - z): un-negate them.
        sign = torch.ones(G, dtype=x.dtype)
        if self.cell.startswith('gru'):
            sign[H:2 * H] = -1
        Wx, Wh = sign[:, None] * self.p('weight_ih', k), sign[:, None] * self.p('weight_hh', k)
        bih, bhh = self.p('bias_ih', k), self.p('bias_hh', k)
        if self.cell == 'gru-reset-after':  # b_hn stays inside r * (...)
            b = torch.cat([sign[:2 * H] * (bih[:2 * H] + bhh[:2 * H]), bih[2 * H:]])
            b_hn = bhh[2 * H:]
        else:
            b = sign * (bih + bhh)
        px = self.norm(x @ Wx.t(), 'ih', k)
        if self.cell == 'rnn':
            return torch.tanh(px + self.norm(h @ Wh.t(), 'hh', k) + b), c
        if self.cell == 'lstm':
            s = px + self.norm(h @ Wh.t(), 'hh', k) + b
            i, f, g, o = (s[:, n * H:(n + 1) * H] for n in range(4))
            c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(self.norm(c2, 'cell', k)), c2
        if self.cell == 'gru':  # reset before: r gates h before its product
            phrz = self.norm(h @ Wh[:2 * H].t(), 'hh', k, slice(0, 2 * H))
            r = torch.sigmoid(px[:, :H] + phrz[:, :H] + b[:H])
            z = torch.sigmoid(px[:, H:2 * H] + phrz[:, H:] + b[H:2 * H])
            phn = self.norm((r * h) @ Wh[2 * H:].t(), 'hh', k, slice(2 * H, 3 * H))
            n = torch.tanh(px[:, 2 * H:] + phn + b[2 * H:])
            return (1 - z) * h + z * n, c
        ph = self.norm(h @ Wh.t(), 'hh', k)  # gru-reset-after
        r = torch.sigmoid(px[:, :H] + ph[:, :H] + b[:H])
        z = torch.sigmoid(px[:, H:2 * H] + ph[:, H:2 * H] + b[H:2 * H])
        n = torch.tanh(px[:, 2 * H:] + b[2 * H:] + r * (ph[:, 2 * H:] + b_hn))
        return (1 - z) * h + z * n, c

    def forward(self, seq):  # (T', B, E) -> top layer's h (T', B, H), zero initial states
        h = [torch.zeros(seq.shape[1], H, dtype=seq.dtype) for _ in range(L)]
        c = [torch.zeros(seq.shape[1], H, dtype=seq.dtype) for _ in range(L)]
        out = []
        for x in seq:
            for k in range(L):
                h[k], c[k] = self.step(k, x, h[k], c[k])
                x = h[k]
            out.append(x)
        return torch.stack(out), None


class Captioner(nn.Module):
    """gradpool's captioner: encoder, embedding, decoder cells (stock or Cells), output layer."""

    def __init__(self, cell, layer_norm_on, stock, enc_eps=EPS, cell_eps=EPS, features=0):
        super().__init__()
        self.encoder = Encoder(enc_eps, features)
        self.embedding = nn.Embedding(V, E)
        if not stock:
            self.rnn = Cells(cell, layer_norm_on, cell_eps)
        elif cell == 'rnn':
            self.rnn = nn.RNN(E, H, L, nonlinearity='tanh')
        elif cell == 'lstm':
            self.rnn = nn.LSTM(E, H, L)
        else:
            self.rnn = nn.GRU(E, H, L)
        self.decoder = nn.Linear(H, V)

    def forward(self, rgb, tokens):  # tokens (T+1, B) -> summed loss, logits (T, B, V)
        seq = torch.cat([self.encoder(rgb)[None], self.embedding(tokens[:-1])])  # x_-1, <start>, words
        out, _ = self.rnn(seq)
        logits = self.decoder(out[1:])  # h_-1 predicts nothing
        loss = F.cross_entropy(logits.reshape(-1, V), tokens[1:].reshape(-1), ignore_index=PAD, reduction='sum')
        return loss, logits


def write_safetensors(path, tensors, metadata):
    """tensors: name -> float32 tensor. Sorted by name, header space-padded to 8 bytes."""
    header = {'__metadata__': metadata}
    blobs, offset = [], 0
    for name in sorted(tensors):
        data = tensors[name].detach().float().contiguous().numpy().astype('<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(tensors[name].shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode('utf-8')
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text + b''.join(blobs))


def random_weights(cell, layer_norm_on, features, gen):
    """float32 weights for every tensor of the file: PyTorch's default init, perturbed norms."""
    model = Captioner(cell, layer_norm_on, stock=False, features=features)
    uniform = lambda shape, bound: (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
    sd = {}
    for name, p in model.state_dict().items():
        shape = tuple(p.shape)
        if name.startswith('encoder.conv'):  # nn.Conv2d's default, for the weight and the bias
            bound = 1 / math.sqrt(model.state_dict()[name.rsplit('.', 1)[0] + '.weight'].shape[1] * 9)
        elif name.startswith('encoder.proj'):
            bound = PROJ_SCALE / math.sqrt(model.encoder.proj.in_features)
        elif name == 'embedding.weight':
            sd[name] = torch.randn(shape, generator=gen, dtype=torch.float64)
            continue
        elif name.startswith('decoder'):
            bound = 1 / math.sqrt(H)
        elif 'norm.weight' in name or 'ln_' in name and '_weight' in name:
            sd[name] = 1 + 0.3 * torch.randn(shape, generator=gen, dtype=torch.float64)  # not 1: a swapped or dropped gain shows
            continue
        elif 'norm.bias' in name or 'ln_' in name and '_bias' in name:
            sd[name] = 0.2 * torch.randn(shape, generator=gen, dtype=torch.float64)
            continue
        elif layer_norm_on and 'weight_hh' in name:
            bound = HH_SCALE / math.sqrt(H)
        else:  # rnn.weight_*, rnn.bias_*: nn.RNN/LSTM/GRU's default
            bound = 1 / math.sqrt(H)
        sd[name] = uniform(shape, bound)
    return {k: v.float() for k, v in sd.items()}  # what the file holds


def run(cell, layer_norm_on, weights32, rgb, tokens, stock, enc_eps=EPS, cell_eps=EPS):
    """float64 loss, logits and file-named gradients of the model with these weights."""
    features = weights32['encoder.proj.weight'].shape[1] if 'encoder.conv0.weight' not in weights32 else 0
    model = Captioner(cell, layer_norm_on, stock, enc_eps, cell_eps, features).double()
    model.load_state_dict({k: v.double() for k, v in weights32.items()}, strict=True)
    loss, logits = model(rgb, tokens)
    model.zero_grad()
    loss.backward()
    return loss.item(), logits.detach(), {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def max_rel_diff(a, b):
    """Largest |a - b| of any tensor, relative to that tensor's largest |a|."""
    return max(float((a[k] - b[k]).abs().max() / a[k].abs().max().clamp_min(1e-30)) for k in a)


def make_case(case, cell, layer_norm_on, features, seed):
    gen = torch.Generator().manual_seed(seed)
    weights = random_weights(cell, layer_norm_on, features, gen)
    if features:  # any float32 rows, e.g. a pretrained CNN's outputs
        rgb = torch.randn(B, features, generator=gen, dtype=torch.float64).float().double()
    else:
        rgb = torch.randint(0, 256, (B, SIZE, SIZE, 3), generator=gen)
    tokens = torch.full((T + 1, B), PAD, dtype=torch.long)
    for b, n in enumerate(WORDS):
        words = torch.randint(3, V, (n,), generator=gen).tolist()  # <unk> and the words
        for t, id in enumerate([START, *words, END]):
            tokens[t, b] = id

    stock = cell in STOCK and not layer_norm_on
    loss, logits, grads = run(cell, layer_norm_on, weights, rgb, tokens, stock)
    if stock:  # the cells written here compute what PyTorch's modules compute
        loss2, _, grads2 = run(cell, False, weights, rgb, tokens, stock=False)
        assert abs(loss - loss2) <= 1e-12 * abs(loss) and max_rel_diff(grads, grads2) < 1e-10, f'{case}: Cells differs from PyTorch'
    # The fixture would catch a wrong epsilon: each moves some gradient well beyond the tolerance.
    sensitivity = {'encoder': max_rel_diff(grads, run(cell, layer_norm_on, weights, rgb, tokens, stock, enc_eps=1e-6)[2])}
    if layer_norm_on:
        sensitivity['cells'] = max_rel_diff(grads, run(cell, layer_norm_on, weights, rgb, tokens, False, cell_eps=1e-6)[2])
    for where, d in sensitivity.items():
        assert d > 10 * RTOL, f'{case}: an epsilon of 1e-6 in the {where} moves the gradients by only {d:.2e}'

    config = {'task': 'caption', 'cell': cell, 'layers': L, 'hidden': H, 'embed': E, 'layerNorm': layer_norm_on}
    config.update({'featureSize': features} if features else {'imageSize': SIZE, 'cnn': CNN})
    metadata = {'gradpool.config': json.dumps(config), 'gradpool.vocab': json.dumps(VOCAB), 'gradpool.tokens': 'word', 'gradpool.task': 'caption'}
    write_safetensors(os.path.join(HERE, f'caption-{case}.safetensors'), weights, metadata)
    golden = {
        'generator': 'test/golden/make_caption_golden.py',
        'torch': torch.__version__,
        'cell': cell,
        'layerNorm': layer_norm_on,
        'pytorchModule': stock,
        'T': T,
        'B': B,
        ('features' if features else 'images'): rgb.reshape(-1).tolist(),
        'tokens': tokens.reshape(-1).tolist(),
        'targets': int((tokens[1:] != PAD).sum()),
        'loss': loss,
        'logits': logits.reshape(-1).tolist(),
        'grads': {name: g.reshape(-1).tolist() for name, g in grads.items()},
        'epsilonSensitivity': sensitivity,
    }
    with open(os.path.join(HERE, f'caption-{case}.json'), 'w') as f:
        json.dump(golden, f)
        f.write('\n')
    print(f'caption-{case}: loss {loss:.6f}, epsilon 1e-6 moves gradients by {", ".join(f"{k} {v:.1e}" for k, v in sensitivity.items())}')


if __name__ == '__main__':
    torch.set_num_threads(1)  # summation order, hence the last bits, does not depend on the machine's cores
    for i, (case, cell, layer_norm_on, features) in enumerate(CASES):
        make_case(case, cell, layer_norm_on, features, 2000 + i)
