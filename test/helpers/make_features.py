#!/usr/bin/python3
"""A features file for a captioning directory, with the standard library only (CI's python3
has no torch): `features` [N, D] float32, one row per image of DIR/captions.txt in the order
it first names them, and metadata `images` naming each row -- the format of
docs/CAPTIONING.md ("Precomputed features"). Stands in for a pretrained CNN's outputs: each
row is the sum of a fixed random vector per word of the image's first caption, plus noise,
so the rows carry what the captions say.

    /usr/bin/python3 test/helpers/make_features.py DIR OUT.safetensors [--dim D] [--seed S]
"""
import json
import random
import struct
import sys


def write_safetensors(path, name, rows, cols, values, metadata):
    data = struct.pack(f'<{len(values)}f', *values)
    header = {'__metadata__': metadata, name: {'dtype': 'F32', 'shape': [rows, cols], 'data_offsets': [0, len(data)]}}
    text = json.dumps(header).encode('utf-8')
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text + data)


def main(argv):
    args, dim, seed = [], 16, 1
    it = iter(argv)
    for a in it:
        if a == '--dim':
            dim = int(next(it))
        elif a == '--seed':
            seed = int(next(it))
        else:
            args.append(a)
    if len(args) != 2:
        sys.exit('usage: make_features.py DIR OUT.safetensors [--dim D] [--seed S]')
    directory, out = args
    first = {}
    with open(f'{directory}/captions.txt', encoding='utf-8') as f:
        for line in f:
            if '\t' not in line:
                continue
            key, caption = line.rstrip('\n').split('\t', 1)
            first.setdefault(key.rsplit('#', 1)[0], caption)
    rng = random.Random(seed)
    word_vectors = {}
    values = []
    for caption in first.values():
        row = [rng.gauss(0, 0.1) for _ in range(dim)]
        for word in caption.lower().split():
            if word not in word_vectors:
                word_vectors[word] = [random.Random(f'{seed}:{word}').gauss(0, 1) for _ in range(dim)]
            row = [a + b for a, b in zip(row, word_vectors[word])]
        values += row
    write_safetensors(out, 'features', len(first), dim, values, {'images': json.dumps(list(first))})
    print(f'wrote {len(first)} rows of {dim} features to {out}')


if __name__ == '__main__':
    main(sys.argv[1:])
