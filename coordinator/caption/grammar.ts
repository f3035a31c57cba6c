// The captions of `shapes` scenes: the reference captions of a scene, the grammar a
// generated caption must parse under, and whether it is true of the scene (accuracy).
//
//   caption  := object | object relation object
//   object   := "a" size colour shape
//   relation := "left of" | "right of" | "above" | "below"   (of the first object to the second)

import { centre, COLOUR_NAMES, type ColourName, type Scene, SHAPES, type ShapeName, type ShapeObject, SIZE_NAMES, type SizeName } from './shapes.js';

export const RELATIONS = ['left of', 'right of', 'above', 'below'] as const;
export type Relation = (typeof RELATIONS)[number];

/** A caption as the grammar reads it. */
export interface ParsedCaption {
  objects: { size: SizeName; colour: ColourName; shape: ShapeName }[];
  relation: Relation | null;
}

const describe = (o: ShapeObject) => `a ${o.size} ${o.colour} ${o.shape}`;

/** The relation of object a to object b: horizontal when |dx| > |dy|; image y grows downwards. */
export function relationOf(a: ShapeObject, b: ShapeObject): Relation {
  const ca = centre(a);
  const cb = centre(b);
  const dx = ca.x - cb.x;
  const dy = ca.y - cb.y;
  if (Math.abs(dx) > Math.abs(dy)) return dx < 0 ? 'left of' : 'right of';
  return dy < 0 ? 'above' : 'below';
}

/** Every reference caption: one for one object, both orders for two. */
export function referenceCaptions(scene: Scene): string[] {
  if (scene.length === 1) return [describe(scene[0])];
  const [a, b] = scene;
  return [`${describe(a)} ${relationOf(a, b)} ${describe(b)}`, `${describe(b)} ${relationOf(b, a)} ${describe(a)}`];
}

/**
 * The reference caption whose order is a function of the image: of two objects, the left
 * one first (relation "left of"), or, when they are one above the other, the upper one
 * ("above"). Training on it spares the decoder guessing which order a caption takes.
 */
export function canonicalCaption(scene: Scene): string {
  const refs = referenceCaptions(scene);
  return refs.find((r) => / (left of|above) /.test(r)) ?? refs[0];
}

/** Reads a caption (words separated by single spaces); null when it does not parse. */
export function parseCaption(text: string): ParsedCaption | null {
  const words = text.trim().split(/\s+/);
  const objects: ParsedCaption['objects'] = [];
  let i = 0;
  const object = (): boolean => {
    const [article, size, colour, shape] = words.slice(i, i + 4);
    if (article !== 'a' || !(SIZE_NAMES as string[]).includes(size) || !(COLOUR_NAMES as string[]).includes(colour)) return false;
    if (!(SHAPES as readonly string[]).includes(shape)) return false;
    objects.push({ size: size as SizeName, colour: colour as ColourName, shape: shape as ShapeName });
    i += 4;
    return true;
  };
  if (!object()) return null;
  if (i === words.length) return { objects, relation: null };
  let relation: Relation | null = null;
  for (const r of RELATIONS) {
    const n = r.split(' ').length;
    if (words.slice(i, i + n).join(' ') === r) {
      relation = r;
      i += n;
      break;
    }
  }
  if (!relation || !object() || i !== words.length) return null;
  return { objects, relation };
}

const same = (p: ParsedCaption['objects'][number], o: ShapeObject) => p.size === o.size && p.colour === o.colour && p.shape === o.shape;

/** A caption is correct when it parses and is true of the scene: each object once, with its attributes and the right relation. */
export function isCorrect(text: string, scene: Scene): boolean {
  const p = parseCaption(text);
  if (!p || p.objects.length !== scene.length) return false;
  if (scene.length === 1) return same(p.objects[0], scene[0]);
  const [a, b] = scene;
  for (const [first, second] of [[a, b], [b, a]]) {
    if (same(p.objects[0], first) && same(p.objects[1], second) && p.relation === relationOf(first, second)) return true;
  }
  return false;
}
