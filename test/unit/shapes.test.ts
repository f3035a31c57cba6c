// The `shapes` dataset against its spec: rendering checked pixel for pixel by an
// independent Python renderer (test/helpers/render_shapes.py), the sampling
// constraints, the noise, determinism, captions, the grammar and the holdout split.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isCorrect, parseCaption, referenceCaptions, relationOf } from '../../coordinator/caption/grammar.js';
import { Rng } from '../../model/rng.js';
import {
  addNoise, centre, COLOURS, compatible, IMAGE_SIZE, pairOf, parseHoldout, renderClean, type Scene, type ShapeObject, shapesImage, SIZES,
} from '../../coordinator/caption/shapes.js';

const scenes = (n: number, seed = 7) => Array.from({ length: n }, (_, i) => shapesImage(seed, i).scene);
const obj = (shape: ShapeObject['shape'], colour: ShapeObject['colour'], size: ShapeObject['size'], x0: number, y0: number): ShapeObject => ({ shape, colour, size, x0, y0 });

describe('rendering', () => {
  it('matches an independent renderer of the spec, pixel for pixel', () => {
    const sample: Scene[] = [
      ...scenes(40),
      // Every shape and size at the image's edges.
      [obj('triangle', 'red', 'large', 0, 0)], [obj('circle', 'white', 'small', 50, 50)], [obj('square', 'purple', 'large', 40, 0)],
    ];
    const r = spawnSync('python3', [join(import.meta.dirname, '..', 'helpers', 'render_shapes.py')], { input: JSON.stringify(sample), encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(r.status, r.stderr).toBe(0);
    const theirs = r.stdout.trim().split('\n');
    expect(theirs).toHaveLength(sample.length);
    sample.forEach((scene, i) => expect(Buffer.from(renderClean(scene)).toString('hex'), JSON.stringify(scene)).toBe(theirs[i]));
  });

  it('draws the exact colours and the known pixel counts of each shape', () => {
    const count = (scene: Scene) => {
      const rgb = renderClean(scene);
      let n = 0;
      for (let i = 0; i < rgb.length; i += 3) if (rgb[i] !== 0 || rgb[i + 1] !== 0 || rgb[i + 2] !== 0) n++;
      return { n, rgb };
    };
    expect(count([obj('square', 'red', 'small', 3, 5)]).n).toBe(14 * 14);
    expect(count([obj('square', 'red', 'large', 3, 5)]).n).toBe(24 * 24);
    // A triangle of side s covers about s²/2 pixels, a circle about πs²/4.
    const tri = count([obj('triangle', 'blue', 'large', 10, 10)]).n;
    expect(Math.abs(tri - 24 * 24 / 2)).toBeLessThan(24);
    const circ = count([obj('circle', 'green', 'large', 10, 10)]).n;
    expect(Math.abs(circ - Math.PI * 24 * 24 / 4)).toBeLessThan(24);
    const { rgb } = count([obj('square', 'yellow', 'small', 0, 0)]);
    expect([...rgb.subarray(0, 3)]).toEqual([...COLOURS.yellow]);
  });
});

describe('sampling', () => {
  const many = scenes(3000, 11);

  it('has one object a third of the time, boxes inside the image, all shapes, colours and sizes', () => {
    const ones = many.filter((s) => s.length === 1).length / many.length;
    expect(ones).toBeGreaterThan(0.3);
    expect(ones).toBeLessThan(0.37);
    const seen = new Set<string>();
    for (const scene of many) {
      for (const o of scene) {
        const s = SIZES[o.size];
        expect(o.x0 >= 0 && o.y0 >= 0 && o.x0 + s <= IMAGE_SIZE && o.y0 + s <= IMAGE_SIZE).toBe(true);
        seen.add(`${o.size} ${pairOf(o)}`);
      }
    }
    expect(seen.size).toBe(2 * 6 * 3);
  });

  it('keeps two boxes at least 2 pixels apart and their centres far from a diagonal tie', () => {
    for (const scene of many.filter((s) => s.length === 2)) {
      const [a, b] = scene;
      expect(compatible(a, b)).toBe(true);
      const ca = centre(a);
      const cb = centre(b);
      expect(Math.abs(Math.abs(ca.x - cb.x) - Math.abs(ca.y - cb.y))).toBeGreaterThanOrEqual(4);
    }
    expect(compatible(obj('square', 'red', 'small', 0, 0), obj('square', 'red', 'small', 15, 5))).toBe(false); // 1 px gap
    expect(compatible(obj('square', 'red', 'small', 0, 0), obj('square', 'red', 'small', 16, 40))).toBe(true);
  });

  it('is a function of (seed, index): the same twice, different for another seed or index', () => {
    expect(Buffer.from(shapesImage(3, 9).rgb).equals(Buffer.from(shapesImage(3, 9).rgb))).toBe(true);
    expect(Buffer.from(shapesImage(3, 9).rgb).equals(Buffer.from(shapesImage(4, 9).rgb))).toBe(false);
    expect(Buffer.from(shapesImage(3, 9).rgb).equals(Buffer.from(shapesImage(3, 10).rgb))).toBe(false);
  });

  it('adds Gaussian noise of σ = 12, rounded and clamped', () => {
    const grey = addNoise(new Uint8Array(30_000).fill(128), new Rng(1));
    const mean = grey.reduce((a, v) => a + v, 0) / grey.length;
    const sd = Math.sqrt(grey.reduce((a, v) => a + (v - mean) ** 2, 0) / grey.length);
    expect(Math.abs(mean - 128)).toBeLessThan(0.3);
    expect(Math.abs(sd - 12)).toBeLessThan(0.3);
    expect(grey.every((v) => Number.isInteger(v))).toBe(true);
    // Black and near-white channels clamp: about half of the noise on 0 stays 0, half of it on 255 stays 255.
    const black = addNoise(new Uint8Array(30_000), new Rng(2));
    const zeros = black.filter((v) => v === 0).length / black.length;
    expect(zeros).toBeGreaterThan(0.5);
    expect(zeros).toBeLessThan(0.55);
    const white = addNoise(new Uint8Array(30_000).fill(255), new Rng(3));
    expect(Math.max(...white)).toBe(255);
    expect(white.filter((v) => v === 255).length / white.length).toBeGreaterThan(0.5);
    // A dataset image is its clean render plus such noise.
    const { scene, rgb } = shapesImage(5, 1);
    const clean = renderClean(scene);
    let far = 0;
    for (let i = 0; i < rgb.length; i++) if (Math.abs(rgb[i] - clean[i]) > 60) far++;
    expect(far).toBe(0);
    expect(Buffer.from(rgb).equals(Buffer.from(clean))).toBe(false);
  });

  it('keeps held-out colour–shape pairs out of training and puts one in every compositional test image', () => {
    const holdout = new Set(['red:square', 'blue:circle']);
    for (let i = 0; i < 500; i++) {
      expect(shapesImage(2, i, holdout).scene.some((o) => holdout.has(pairOf(o)))).toBe(false);
      expect(shapesImage(2, i, holdout, true).scene.some((o) => holdout.has(pairOf(o)))).toBe(true);
    }
  });

  it('parses --holdout and names what is wrong', () => {
    expect(parseHoldout('red:square, blue:circle')).toEqual({ pairs: new Set(['red:square', 'blue:circle']) });
    expect(parseHoldout('red:hexagon')).toEqual({ problem: expect.stringContaining('"red:hexagon" is not COLOUR:SHAPE') });
    expect(parseHoldout('pink:square')).toEqual({ problem: expect.stringContaining('"pink:square"') });
    expect(parseHoldout(',')).toEqual({ problem: 'no COLOUR:SHAPE pair given' });
  });
});

describe('captions', () => {
  const a = obj('circle', 'red', 'small', 4, 20);
  const b = obj('triangle', 'blue', 'large', 30, 22);

  it('names one object, or two with the relation of the first to the second, in both orders', () => {
    expect(referenceCaptions([a])).toEqual(['a small red circle']);
    expect(referenceCaptions([a, b])).toEqual(['a small red circle left of a large blue triangle', 'a large blue triangle right of a small red circle']);
    const top = obj('square', 'white', 'small', 20, 0);
    const bottom = obj('square', 'green', 'small', 22, 40);
    expect(relationOf(top, bottom)).toBe('above');
    expect(relationOf(bottom, top)).toBe('below');
  });

  it('every reference caption parses and is correct; a wrong attribute, relation or count is not', () => {
    for (const scene of scenes(300, 3)) for (const c of referenceCaptions(scene)) expect(isCorrect(c, scene), c).toBe(true);
    expect(isCorrect('a small red circle right of a large blue triangle', [a, b])).toBe(false);
    expect(isCorrect('a small red circle left of a large blue square', [a, b])).toBe(false);
    expect(isCorrect('a small red circle', [a, b])).toBe(false);
    expect(isCorrect('a small red circle left of a large blue triangle', [a])).toBe(false);
    expect(isCorrect('a large red circle', [a])).toBe(false);
  });

  it('rejects what the grammar does not generate', () => {
    for (const bad of ['', 'a', 'a small red', 'small red circle', 'a small red circle left a large blue triangle', 'a small red circle left of',
      'a small red circle above a large blue triangle a', 'a small red circle <end>', 'the small red circle']) {
      expect(parseCaption(bad), bad).toBeNull();
    }
    expect(parseCaption('a large purple triangle below a small yellow square')).toEqual({
      objects: [{ size: 'large', colour: 'purple', shape: 'triangle' }, { size: 'small', colour: 'yellow', shape: 'square' }], relation: 'below',
    });
  });
});
