"""PyTorch golden values for the captioner's CNN encoder (test/unit/cnn.test.ts):
Conv2d(3x3, padding 1) + ReLU + MaxPool2d(2) blocks, flatten, Linear, in float64,
with weights, images and the loss sum(out * R) fixed by a seed; records the output
and every parameter's gradient, with the weights in PyTorch's own layout.

    /usr/bin/python3 test/golden/make_cnn_golden.py   # Debian python3-torch 1.13
writes test/golden/cnn.json."""
import json
import os

import torch
from torch import nn

torch.manual_seed(7)
SIZE, CHANNELS, EMBED, N = 16, [4, 6], 5, 2

layers, cin = [], 3
for cout in CHANNELS:
    layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    cin = cout
side = SIZE >> len(CHANNELS)
body = nn.Sequential(*layers).double()
proj = nn.Linear(cin * side * side, EMBED).double()

rgb = torch.randint(0, 256, (N, SIZE, SIZE, 3), dtype=torch.int64)
x = (rgb.double() / 255 - 0.5).permute(0, 3, 1, 2).contiguous()  # NHWC bytes -> NCHW input
out = proj(torch.flatten(body(x), 1))
R = torch.randn(N, EMBED, dtype=torch.float64)
(out * R).sum().backward()

params = {}
convs = [m for m in body if isinstance(m, nn.Conv2d)]
for i, conv in enumerate(convs):
    params[f"encoder.conv{i}.weight"] = conv.weight
    params[f"encoder.conv{i}.bias"] = conv.bias
params["encoder.proj.weight"] = proj.weight
params["encoder.proj.bias"] = proj.bias

fixture = {
    "generator": "test/golden/make_cnn_golden.py",
    "torch": torch.__version__,
    "size": SIZE, "channels": CHANNELS, "embed": EMBED, "n": N,
    "rgb": rgb.flatten().tolist(),
    "R": R.flatten().tolist(),
    "out": out.detach().flatten().tolist(),
    "params": {k: {"shape": list(v.shape), "value": v.detach().flatten().tolist(), "grad": v.grad.flatten().tolist()} for k, v in params.items()},
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cnn.json")
with open(path, "w") as f:
    json.dump(fixture, f)
print(f"wrote {path}")
