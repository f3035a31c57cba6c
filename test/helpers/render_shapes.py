"""An independent renderer of `shapes` scenes, written from the spec in
docs/CAPTIONING.md alone (not from gradpool's TypeScript).

    python3 render_shapes.py             reads scenes as JSON on stdin, writes each clean
                                         (noiseless) 64x64 RGB image as hex on stdout, one
                                         per line; test/unit/shapes.test.ts compares
                                         gradpool's images with these bytes.
    python3 render_shapes.py --sample N --seed S --out DIR
                                         draws N scenes of its own (Python's random, the
                                         spec's distribution and noise), writes DIR/N.png
                                         (its own PNG writer: zlib, no PIL) and prints the
                                         scenes as JSON; test/e2e/caption-independent.test.ts
                                         captions them with a trained model.
"""
import json
import os
import random
import struct
import sys
import zlib

SIZE = 64
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 90, 230),
           "yellow": (230, 210, 40), "white": (235, 235, 235), "purple": (160, 70, 200)}
SIDES = {"small": 14, "large": 24}


def inside(obj, x, y):
    s = SIDES[obj["size"]]
    x0, y0 = obj["x0"], obj["y0"]
    if obj["shape"] == "square":
        return x0 <= x <= x0 + s and y0 <= y <= y0 + s
    if obj["shape"] == "circle":
        return (x - (x0 + s / 2)) ** 2 + (y - (y0 + s / 2)) ** 2 <= (s / 2) ** 2
    if obj["shape"] == "triangle":
        return y0 <= y <= y0 + s and abs(x - (x0 + s / 2)) <= (y - y0) / 2
    raise ValueError(obj["shape"])


def render(scene):
    img = bytearray(SIZE * SIZE * 3)
    for obj in scene:  # later objects are drawn over earlier ones
        for py in range(SIZE):
            for px in range(SIZE):
                if inside(obj, px + 0.5, py + 0.5):
                    i = (py * SIZE + px) * 3
                    img[i:i + 3] = bytes(COLOURS[obj["colour"]])
    return bytes(img)


SHAPES = ["circle", "square", "triangle"]


def draw_object(rng):
    size = rng.choice(list(SIDES))
    s = SIDES[size]
    return {"shape": rng.choice(SHAPES), "colour": rng.choice(list(COLOURS)), "size": size,
            "x0": rng.randint(0, SIZE - s), "y0": rng.randint(0, SIZE - s)}


def allowed(a, b):
    """Boxes at least 2 pixels apart, and the centres' |dx| and |dy| at least 4 apart."""
    sa, sb = SIDES[a["size"]], SIDES[b["size"]]
    apart = (b["x0"] - (a["x0"] + sa) >= 2 or a["x0"] - (b["x0"] + sb) >= 2 or
             b["y0"] - (a["y0"] + sa) >= 2 or a["y0"] - (b["y0"] + sb) >= 2)
    dx = abs((a["x0"] + sa / 2) - (b["x0"] + sb / 2))
    dy = abs((a["y0"] + sa / 2) - (b["y0"] + sb / 2))
    return apart and abs(dx - dy) >= 4


def sample_scene(rng):
    first = draw_object(rng)
    if rng.random() < 1 / 3:
        return [first]
    while True:
        second = draw_object(rng)
        if allowed(first, second):
            return [first, second]


def noisy(img, rng):
    return bytes(min(255, max(0, round(v + rng.gauss(0, 12)))) for v in img)


def png(rgb):
    raw = b"".join(b"\x00" + rgb[y * SIZE * 3:(y + 1) * SIZE * 3] for y in range(SIZE))
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


if len(sys.argv) > 1:
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    rng = random.Random(int(args["--seed"]))
    scenes = [sample_scene(rng) for _ in range(int(args["--sample"]))]
    for i, scene in enumerate(scenes):
        with open(os.path.join(args["--out"], f"{i}.png"), "wb") as f:
            f.write(png(noisy(render(scene), rng)))
    print(json.dumps(scenes))
else:
    for scene in json.load(sys.stdin):
        print(render(scene).hex())
