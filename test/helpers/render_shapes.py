"""An independent renderer of `shapes` scenes, written from the spec in
docs/CAPTIONING.md alone (not from gradpool's TypeScript): reads scenes as JSON
on stdin, writes each clean (noiseless) 64x64 RGB image as hex on stdout, one per
line. test/unit/shapes.test.ts compares gradpool's images with these bytes."""
import json
import sys

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


for scene in json.load(sys.stdin):
    print(render(scene).hex())
