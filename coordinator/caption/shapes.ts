// The `shapes` captioning dataset: scenes of one or two coloured shapes on black,
// drawn from a seed exactly as docs/CAPTIONING.md specifies, so that anyone can render
// the same distribution independently. Image i of seed S depends on (S, i) only.

import { Rng } from '../../model/rng.js';

export const IMAGE_SIZE = 64;
export const SHAPES = ['circle', 'square', 'triangle'] as const;
export type ShapeName = (typeof SHAPES)[number];
/** Exact RGB of each colour word. */
export const COLOURS = {
  red: [220, 40, 40],
  green: [40, 180, 60],
  blue: [50, 90, 230],
  yellow: [230, 210, 40],
  white: [235, 235, 235],
  purple: [160, 70, 200],
} as const;
export type ColourName = keyof typeof COLOURS;
export const COLOUR_NAMES = Object.keys(COLOURS) as ColourName[];
/** Bounding-box side in pixels of each size word. */
export const SIZES = { small: 14, large: 24 } as const;
export type SizeName = keyof typeof SIZES;
export const SIZE_NAMES = Object.keys(SIZES) as SizeName[];
/** Standard deviation of the Gaussian noise added to every channel of every pixel. */
export const NOISE_SIGMA = 12;

export interface ShapeObject {
  shape: ShapeName;
  colour: ColourName;
  size: SizeName;
  /** Top-left corner of the bounding box, in pixels. */
  x0: number;
  y0: number;
}

/** One or two objects; the second is drawn over the first. */
export type Scene = ShapeObject[];

/** A colour–shape pair kept out of training ("red:square"). */
export type Holdout = ReadonlySet<string>;

export const pairOf = (o: Pick<ShapeObject, 'colour' | 'shape'>): string => `${o.colour}:${o.shape}`;

function side(o: ShapeObject): number {
  return SIZES[o.size];
}

/** Centre of an object's bounding box. */
export function centre(o: ShapeObject): { x: number; y: number } {
  const s = side(o);
  return { x: o.x0 + s / 2, y: o.y0 + s / 2 };
}

/**
 * Two objects may share a scene when their boxes are at least 2 pixels apart along one
 * axis (so they never overlap) and their centres' |dx| and |dy| differ by at least 4
 * pixels (so the relation, left/right against above/below, is never a near tie).
 */
export function compatible(a: ShapeObject, b: ShapeObject): boolean {
  const gapX = Math.max(a.x0 - (b.x0 + side(b)), b.x0 - (a.x0 + side(a)));
  const gapY = Math.max(a.y0 - (b.y0 + side(b)), b.y0 - (a.y0 + side(a)));
  if (Math.max(gapX, gapY) < 2) return false;
  const ca = centre(a);
  const cb = centre(b);
  return Math.abs(Math.abs(ca.x - cb.x) - Math.abs(ca.y - cb.y)) >= 4;
}

function randomObject(rng: Rng): ShapeObject {
  const shape = SHAPES[rng.int(SHAPES.length)];
  const colour = COLOUR_NAMES[rng.int(COLOUR_NAMES.length)];
  const size = SIZE_NAMES[rng.int(SIZE_NAMES.length)];
  const s = SIZES[size];
  return { shape, colour, size, x0: rng.int(IMAGE_SIZE - s + 1), y0: rng.int(IMAGE_SIZE - s + 1) };
}

/**
 * The scene of one image. `holdout` pairs are rejected (training and validation) or
 * required in at least one object (`requireHoldout`, the compositional test set).
 */
export function sampleScene(rng: Rng, holdout: Holdout = new Set(), requireHoldout = false): Scene {
  for (;;) {
    const count = rng.int(3) === 0 ? 1 : 2;
    const first = randomObject(rng);
    const scene: Scene = [first];
    if (count === 2) {
      let second = randomObject(rng);
      while (!compatible(first, second)) second = randomObject(rng);
      scene.push(second);
    }
    const held = scene.some((o) => holdout.has(pairOf(o)));
    if (requireHoldout ? held : !held) return scene;
  }
}

/** Whether the centre of pixel (px, py) lies inside the object. */
export function covers(o: ShapeObject, px: number, py: number): boolean {
  const s = side(o);
  const x = px + 0.5;
  const y = py + 0.5;
  switch (o.shape) {
    case 'square':
      return x >= o.x0 && x <= o.x0 + s && y >= o.y0 && y <= o.y0 + s;
    case 'circle': {
      const dx = x - (o.x0 + s / 2);
      const dy = y - (o.y0 + s / 2);
      return dx * dx + dy * dy <= (s / 2) * (s / 2);
    }
    case 'triangle':
      return y >= o.y0 && y <= o.y0 + s && Math.abs(x - (o.x0 + s / 2)) <= (y - o.y0) / 2;
  }
}

/** The noiseless image: (64, 64, 3) bytes, row-major, RGB. */
export function renderClean(scene: Scene): Uint8Array {
  const rgb = new Uint8Array(IMAGE_SIZE * IMAGE_SIZE * 3);
  for (const o of scene) {
    const [r, g, b] = COLOURS[o.colour];
    const s = side(o);
    for (let py = o.y0; py < o.y0 + s; py++) {
      for (let px = o.x0; px < o.x0 + s; px++) {
        if (!covers(o, px, py)) continue;
        const i = (py * IMAGE_SIZE + px) * 3;
        rgb[i] = r;
        rgb[i + 1] = g;
        rgb[i + 2] = b;
      }
    }
  }
  return rgb;
}

/** Adds N(0, σ²) noise to every channel, rounded and clamped to [0, 255], in place. */
export function addNoise(rgb: Uint8Array, rng: Rng, sigma = NOISE_SIGMA): Uint8Array {
  for (let i = 0; i < rgb.length; i++) {
    const v = Math.round(rgb[i] + sigma * rng.normal());
    rgb[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return rgb;
}

export interface ShapesImage {
  scene: Scene;
  /** (64, 64, 3) RGB bytes with noise. */
  rgb: Uint8Array;
}

/** Image `index` of the dataset with this seed (and split: the compositional test set draws only held-out pairs). */
export function shapesImage(seed: number, index: number, holdout: Holdout = new Set(), compositional = false): ShapesImage {
  const rng = new Rng(seed, compositional ? 0x5ca1ab1e : 0x5a9e5, index);
  const scene = sampleScene(rng, holdout, compositional);
  return { scene, rgb: addNoise(renderClean(scene), rng) };
}

/** Parses `--holdout red:square,blue:circle`; null names what is wrong. */
export function parseHoldout(text: string): { pairs: Holdout } | { problem: string } {
  const pairs = new Set<string>();
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const [colour, shape, extra] = part.split(':');
    if (extra !== undefined || !(COLOUR_NAMES as string[]).includes(colour) || !(SHAPES as readonly string[]).includes(shape ?? '')) {
      return { problem: `"${part}" is not COLOUR:SHAPE with a colour of ${COLOUR_NAMES.join(', ')} and a shape of ${SHAPES.join(', ')}` };
    }
    pairs.add(part);
  }
  if (pairs.size === 0) return { problem: 'no COLOUR:SHAPE pair given' };
  if (pairs.size >= COLOUR_NAMES.length * SHAPES.length) return { problem: 'every colour–shape pair is held out; nothing is left to train on' };
  return { pairs };
}
