#!/usr/bin/python3
"""Precomputed image features for `gradpool train --task caption --features FILE`
(docs/CAPTIONING.md, "Precomputed features"), made with PyTorch.

    /usr/bin/python3 docs/examples/caption_features.py DIR features.safetensors

Writes one row per image of DIR's captions file (captions.txt or Flickr8k.token.txt), in
the order it first names them: a float32 tensor "features" [N, D] and the metadata
"images", a JSON list naming the image of each row. The CNN below is a stand-in (random
weights, seeded); put your pretrained network in `encoder` -- e.g. with torchvision,
`torchvision.models.resnet18(weights="DEFAULT")` with its `fc` replaced by
`torch.nn.Identity()` gives D = 512 -- and its own input normalization in `pixels`.
Needs torch and PIL (Debian: python3-torch, python3-pil).
"""
import json
import os
import struct
import sys

import torch
from PIL import Image
from torch import nn

SIDE = 64  # the side the images are resized to before the CNN


def image_names(directory):
    """The captions file's images, in the order it first names them (lines IMAGE#N<TAB>caption)."""
    for name in ('captions.txt', 'Flickr8k.token.txt'):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            with open(path, encoding='utf-8') as f:
                keys = [line.split('\t', 1)[0].rsplit('#', 1)[0] for line in f if '\t' in line]
            return list(dict.fromkeys(keys))
    sys.exit(f'{directory}: no captions.txt or Flickr8k.token.txt')


def image_folder(directory):
    for name in ('images', 'Flicker8k_Dataset', 'Flickr8k_Dataset'):
        if os.path.isdir(os.path.join(directory, name)):
            return os.path.join(directory, name)
    sys.exit(f'{directory}: no images/ or Flicker8k_Dataset/ folder')


def pixels(path):
    """(3, SIDE, SIDE) floats in [-0.5, 0.5] (gradpool's own CNN input; a pretrained CNN wants its own)."""
    rgb = Image.open(path).convert('RGB').resize((SIDE, SIDE), Image.BICUBIC)
    x = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).reshape(SIDE, SIDE, 3)
    return x.permute(2, 0, 1).float() / 255 - 0.5


def write_safetensors(path, features, names):
    """safetensors by hand (or: safetensors.torch.save_file({'features': features}, path, {'images': ...}))."""
    data = features.contiguous().float().numpy().astype('<f4').tobytes()
    header = {'__metadata__': {'images': json.dumps(names)},
              'features': {'dtype': 'F32', 'shape': list(features.shape), 'data_offsets': [0, len(data)]}}
    text = json.dumps(header).encode('utf-8')
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text + data)


def main(directory, out):
    torch.manual_seed(0)
    encoder = nn.Sequential(  # stand-in: 3 conv blocks, then the global average of each channel (D = 64)
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ).eval()
    names = image_names(directory)
    folder = image_folder(directory)
    rows = []
    with torch.no_grad():
        for start in range(0, len(names), 64):
            batch = torch.stack([pixels(os.path.join(folder, n)) for n in names[start:start + 64]])
            rows.append(encoder(batch))
    features = torch.cat(rows)  # (N, D)
    write_safetensors(out, features, names)
    print(f'wrote {features.shape[0]} rows of {features.shape[1]} features to {out}')


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit('usage: caption_features.py DIR OUT.safetensors')
    main(sys.argv[1], sys.argv[2])
