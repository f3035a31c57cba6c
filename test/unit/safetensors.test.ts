// The safetensors reader and writer: byte layout, round trips, and one test per
// validation message, since model files come from outside.

import { describe, expect, it } from 'vitest';
import { MAX_HEADER_BYTES, SafetensorsError, type Tensor, encodeSafetensors, parseSafetensors } from '../../model/safetensors.js';
import { rawSafetensors } from '../helpers/safetensors-bytes.js';

const rawFile = rawSafetensors;

const f32 = (n: number) => new Uint8Array(4 * n);
const parseError = (bytes: Uint8Array) => () => parseSafetensors(bytes, 'bad.safetensors');

describe('encodeSafetensors', () => {
  const tensors = new Map<string, Tensor>([
    ['b', { shape: [3], data: new Float32Array([1, 2, 3]) }],
    ['a', { shape: [2, 2], data: new Float32Array([-1.5, 0, 1e-30, 3e38]) }],
  ]);

  it('writes the length, a space-padded JSON header sorted by name, then contiguous little-endian data', () => {
    const bytes = encodeSafetensors(tensors, { note: 'hi' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text).toMatch(/^\{.*\} *$/);
    const header = JSON.parse(text);
    expect(Object.keys(header)).toEqual(['__metadata__', 'a', 'b']);
    expect(header.a).toEqual({ dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] });
    expect(header.b).toEqual({ dtype: 'F32', shape: [3], data_offsets: [16, 28] });
    expect(bytes.length).toBe(8 + n + 28);
    expect(new DataView(bytes.buffer).getFloat32(8 + n, true)).toBe(-1.5);
    expect(new DataView(bytes.buffer).getFloat32(8 + n + 16, true)).toBe(1);
  });

  it('round-trips tensors and metadata', () => {
    const parsed = parseSafetensors(encodeSafetensors(tensors, { 'gradpool.x': '{"a":1}', empty: '' }));
    expect(parsed.metadata).toEqual({ 'gradpool.x': '{"a":1}', empty: '' });
    expect([...parsed.tensors.keys()].sort()).toEqual(['a', 'b']);
    expect(parsed.tensors.get('a')).toEqual({ dtype: 'F32', shape: [2, 2], data: tensors.get('a')!.data });
    expect(parsed.tensors.get('b')!.data).toEqual(new Float32Array([1, 2, 3]));
  });

  it('round-trips empty tensors, scalars, no metadata and a subarray view', () => {
    const backing = new Float32Array([9, 8, 7, 6]);
    const t = new Map<string, Tensor>([
      ['empty', { shape: [0, 5], data: new Float32Array(0) }],
      ['scalar', { shape: [], data: new Float32Array([4]) }],
      ['view', { shape: [2], data: backing.subarray(1, 3) }],
    ]);
    const parsed = parseSafetensors(encodeSafetensors(t));
    expect(parsed.metadata).toEqual({});
    expect(parsed.tensors.get('empty')!.data.length).toBe(0);
    expect(parsed.tensors.get('scalar')!.data).toEqual(new Float32Array([4]));
    expect(parsed.tensors.get('view')!.data).toEqual(new Float32Array([8, 7]));
  });

  it('writes any tensor name, "__proto__" included', () => {
    const t = new Map<string, Tensor>([['__proto__', { shape: [1], data: new Float32Array([5]) }]]);
    expect(parseSafetensors(encodeSafetensors(t)).tensors.get('__proto__')!.data).toEqual(new Float32Array([5]));
  });

  it('rejects a shape that does not match the data', () => {
    const t = new Map<string, Tensor>([['x', { shape: [2, 3], data: new Float32Array(5) }]]);
    expect(() => encodeSafetensors(t)).toThrow(/tensor "x": shape \[2,3\] holds 6 values but data has 5/);
  });
});

describe('parseSafetensors rejects bad files with a precise message', () => {
  const good = { x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  it('accepts the reference layout, reads unaligned data and a Node Buffer view', () => {
    // a 13-byte header puts the data at an odd offset
    const bytes = rawFile(JSON.stringify(good).padEnd(61), new Uint8Array(new Float32Array([1.25, -2]).buffer));
    expect(parseSafetensors(bytes).tensors.get('x')!.data).toEqual(new Float32Array([1.25, -2]));
    const inBuffer = Buffer.concat([Buffer.alloc(3), Buffer.from(bytes)]).subarray(3);
    expect(parseSafetensors(inBuffer).tensors.get('x')!.data).toEqual(new Float32Array([1.25, -2]));
  });

  it('file shorter than 8 bytes', () => {
    expect(parseError(new Uint8Array(5))).toThrow(SafetensorsError);
    expect(parseError(new Uint8Array(5))).toThrow(/bad\.safetensors: file is 5 bytes, shorter than the 8-byte header length/);
  });

  it('header length beyond the file (truncated file)', () => {
    const bytes = rawFile(good, f32(2));
    expect(parseError(bytes.subarray(0, 20))).toThrow(/header length \d+ goes beyond the file \(20 bytes/);
    expect(parseError(rawFile(good, f32(2), 1000n))).toThrow(/header length 1000 goes beyond the file/);
  });

  it('header lengths beyond 2^53 or over 100 MB, without hanging', () => {
    expect(parseError(rawFile(good, f32(2), 0xffff_ffff_ffff_ffffn))).toThrow(/header length 18446744073709551615 is over the 100000000-byte limit/);
    expect(parseError(rawFile(good, f32(2), 2n ** 53n + 1n))).toThrow(/header length 9007199254740993 is over/);
    expect(parseError(rawFile(good, f32(2), BigInt(MAX_HEADER_BYTES + 1)))).toThrow(/over the 100000000-byte limit/);
  });

  it('header not valid UTF-8 or JSON, or not an object', () => {
    const badUtf8 = rawFile('{"a":"\u0000"}');
    badUtf8[8 + 6] = 0xff;
    expect(parseError(badUtf8)).toThrow(/header is not valid UTF-8 JSON/);
    expect(parseError(rawFile('{"x": '))).toThrow(/header is not valid UTF-8 JSON/);
    expect(parseError(rawFile('[1, 2]'))).toThrow(/header must be a JSON object, got an array/);
    expect(parseError(rawFile('null'))).toThrow(/header must be a JSON object, got null/);
    expect(parseError(rawFile('"text"'))).toThrow(/header must be a JSON object, got "text"/);
  });

  it('a tensor entry that is not an object or has unknown keys', () => {
    expect(parseError(rawFile({ x: 5 }))).toThrow(/tensor "x" must be an object with dtype, shape and data_offsets/);
    expect(parseError(rawFile({ x: { ...good.x, extra: 1 } }, f32(2)))).toThrow(/tensor "x" has unknown key "extra"/);
  });

  it('unknown and unsupported dtypes: only F32', () => {
    expect(parseError(rawFile({ x: { ...good.x, dtype: 'F16' } }, f32(2)))).toThrow(/tensor "x" has unsupported dtype "F16"; only F32 is supported/);
    expect(parseError(rawFile({ x: { ...good.x, dtype: 'F31' } }, f32(2)))).toThrow(/tensor "x" has unknown dtype "F31"; only F32 is supported/);
    expect(parseError(rawFile({ x: { ...good.x, dtype: 7 } }, f32(2)))).toThrow(/dtype 7; only F32 is supported/);
  });

  it('shape not an array of non-negative integers', () => {
    for (const shape of [[-1], [1.5], ['2'], 2, null, [2 ** 60]]) {
      expect(parseError(rawFile({ x: { ...good.x, shape } }, f32(2)))).toThrow(/tensor "x": shape .* must be an array of non-negative integers/);
    }
    expect(parseError(rawFile({ x: { ...good.x, shape: [2 ** 30, 2 ** 30] } }, f32(2)))).toThrow(/shape \[1073741824,1073741824\] is too large/);
  });

  it('data_offsets malformed, end before begin, or out of range', () => {
    expect(parseError(rawFile({ x: { ...good.x, data_offsets: [0] } }, f32(2)))).toThrow(/data_offsets \[0\] must be \[begin, end\]/);
    expect(parseError(rawFile({ x: { ...good.x, data_offsets: [-8, 0] } }, f32(2)))).toThrow(/must be \[begin, end\], two non-negative integers/);
    expect(parseError(rawFile({ x: { ...good.x, data_offsets: [8, 0] } }, f32(2)))).toThrow(/data_offsets \[8, 0\] end before begin/);
    expect(parseError(rawFile({ x: { ...good.x, data_offsets: [4, 12] } }, f32(2)))).toThrow(/data_offsets \[4, 12\] out of range: the data section has 8 bytes/);
    expect(parseError(rawFile({ x: { ...good.x, data_offsets: [0, 2 ** 60] } }, f32(2)))).toThrow(/out of range/);
  });

  it('shape not matching the data size', () => {
    expect(parseError(rawFile({ x: { ...good.x, shape: [3] } }, f32(2)))).toThrow(/data_offsets \[0, 8\] span 8 bytes, which does not match shape \[3\] of F32 \(12 bytes\)/);
  });

  it('overlapping tensors; gaps and trailing bytes are allowed', () => {
    const header = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
    expect(parseError(rawFile(header, f32(3)))).toThrow(/tensors "a" \[0, 8\] and "b" \[4, 12\] overlap/);
    const gaps = { a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [12, 16] } };
    const parsed = parseSafetensors(rawFile(gaps, f32(6)));
    expect([...parsed.tensors.keys()].sort()).toEqual(['a', 'b']);
  });

  it('__metadata__ not an object of strings', () => {
    expect(parseError(rawFile({ __metadata__: { n: 5 } }))).toThrow(/__metadata__ value of "n" must be a string, got 5/);
    expect(parseError(rawFile({ __metadata__: ['a'] }))).toThrow(/__metadata__ must be an object of strings/);
  });

  it('keeps a "__proto__" metadata key as plain data', () => {
    const parsed = parseSafetensors(rawFile('{"__metadata__": {"__proto__": "x"}}'));
    expect(Object.getPrototypeOf(parsed.metadata)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(parsed.metadata, '__proto__')?.value).toBe('x');
  });

  it('never hangs or crashes on random bytes', () => {
    let seed = 12345;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    const valid = encodeSafetensors(new Map([['w', { shape: [4], data: new Float32Array(4) }]]), { k: 'v' });
    for (let trial = 0; trial < 500; trial++) {
      const bytes = valid.slice(0, next() % (valid.length + 1));
      for (let flips = next() % 4; flips > 0; flips--) if (bytes.length) bytes[next() % bytes.length] = next() & 0xff;
      try {
        parseSafetensors(bytes);
      } catch (e) {
        expect(e).toBeInstanceOf(SafetensorsError);
      }
    }
  });
});
