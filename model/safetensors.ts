// The safetensors container (https://github.com/huggingface/safetensors), float32 only:
// the model-file format that gradpool and PyTorch both read and write.
//
//   [u64 LE: N] [N bytes UTF-8 JSON header, space-padded] [raw little-endian tensor data]
//   header: { "__metadata__": {string: string}, "<name>": {dtype, shape, data_offsets: [begin, end]} }
//   data_offsets are relative to the start of the data section.
//
// Files come from outside (downloads, other tools), so parsing trusts nothing: every
// length and offset is range-checked before use and every error names the file.

import { show } from './show.js';

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  /** Read by coordinator/exit.ts: 'input' exits with code 2. */
  readonly kind = 'input';
}

export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface ParsedTensor extends Tensor {
  readonly dtype: 'F32';
}

export interface Safetensors {
  readonly tensors: Map<string, ParsedTensor>;
  readonly metadata: Record<string, string>;
}

/** The reference implementation's limit; a bigger header is a corrupt or hostile file. */
export const MAX_HEADER_BYTES = 100_000_000;

// Every dtype the format defines; naming them lets us say "unsupported" rather than "unknown".
const KNOWN_DTYPES = ['BOOL', 'U8', 'I8', 'U16', 'I16', 'F16', 'BF16', 'U32', 'I32', 'F32', 'U64', 'I64', 'F64', 'F8_E4M3', 'F8_E5M2', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64'];
const TENSOR_KEYS = ['dtype', 'shape', 'data_offsets'];

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Element count of a shape, or an error if the dimensions are not valid. */
function elementCount(shape: readonly number[], where: string): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new SafetensorsError(`${where}: shape ${show(shape)} must be an array of non-negative integers`);
    n *= d;
  }
  if (!Number.isSafeInteger(n * 4)) throw new SafetensorsError(`${where}: shape ${show(shape)} is too large`);
  return n;
}

/** Serialize float32 tensors, sorted by name, with string metadata. Output is byte-deterministic. */
export function encodeSafetensors(tensors: ReadonlyMap<string, Tensor>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = Object.create(null); // so a tensor named "__proto__" is a plain key
  const metaEntries = Object.entries(metadata);
  for (const [key, value] of metaEntries) {
    if (typeof value !== 'string') throw new SafetensorsError(`metadata "${key}" must be a string, got ${typeof value}`);
  }
  if (metaEntries.length > 0) header.__metadata__ = Object.fromEntries(metaEntries);
  const names = [...tensors.keys()].sort();
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__') throw new SafetensorsError('a tensor may not be named "__metadata__"');
    const { shape, data } = tensors.get(name)!;
    const n = elementCount(shape, `tensor "${name}"`);
    if (n !== data.length) throw new SafetensorsError(`tensor "${name}": shape ${show(shape)} holds ${n} values but data has ${data.length}`);
    header[name] = { dtype: 'F32', shape: [...shape], data_offsets: [offset, offset + 4 * n] };
    offset += 4 * n;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded); // spaces: the header stays valid JSON
  const dataStart = 8 + padded;
  const dv = new DataView(out.buffer);
  for (const name of names) {
    const { data } = tensors.get(name)!;
    const at = dataStart + (header[name] as { data_offsets: number[] }).data_offsets[0];
    if (LITTLE_ENDIAN_HOST) out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    else for (let i = 0; i < data.length; i++) dv.setFloat32(at + 4 * i, data[i], true);
  }
  return out;
}

/** Parse and validate a safetensors file. `what` names the file in error messages. */
export function parseSafetensors(bytes: Uint8Array, what = 'safetensors data'): Safetensors {
  const fail = (problem: string): never => {
    throw new SafetensorsError(`${what}: ${problem}`);
  };
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length (truncated?)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // BigInt: a hostile u64 may exceed 2^53, where Number would silently round.
  const headerLength = dv.getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) fail(`header length ${headerLength} is over the ${MAX_HEADER_BYTES}-byte limit (corrupt file?)`);
  const N = Number(headerLength);
  if (8 + N > bytes.length) fail(`header length ${N} goes beyond the file (${bytes.length} bytes; truncated?)`);

  let header: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + N));
    header = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail(`header must be a JSON object, got ${Array.isArray(header) ? 'an array' : show(header)}`);

  const metadata = parseMetadata((header as Record<string, unknown>).__metadata__, fail);
  const dataStart = 8 + N;
  const dataLength = bytes.length - dataStart;
  const spans: { name: string; begin: number; end: number; shape: number[] }[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const where = `tensor "${name}"`;
    if (info === null || typeof info !== 'object' || Array.isArray(info)) fail(`${where} must be an object with dtype, shape and data_offsets`);
    const entry = info as Record<string, unknown>;
    for (const key of Object.keys(entry)) if (!TENSOR_KEYS.includes(key)) fail(`${where} has unknown key "${key}"; allowed: ${TENSOR_KEYS.join(', ')}`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== 'string') fail(`${where} has dtype ${show(dtype)}; only F32 is supported`);
    if (dtype !== 'F32') fail(`${where} has ${KNOWN_DTYPES.includes(dtype as string) ? 'unsupported' : 'unknown'} dtype ${show(dtype)}; only F32 is supported`);
    if (!Array.isArray(shape)) fail(`${where}: shape ${show(shape)} must be an array of non-negative integers`);
    const count = elementCount(shape as number[], `${what}: ${where}`);
    const okOffset = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0; // huge ones fail the range check below
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(okOffset)) {
      fail(`${where}: data_offsets ${show(offsets)} must be [begin, end], two non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`${where}: data_offsets [${begin}, ${end}] end before begin`);
    if (end > dataLength) fail(`${where}: data_offsets [${begin}, ${end}] out of range: the data section has ${dataLength} bytes`);
    if (end - begin !== count * 4) {
      fail(`${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, which does not match shape ${show(shape)} of F32 (${count * 4} bytes)`);
    }
    spans.push({ name, begin, end, shape: shape as number[] });
  }
  // Gaps and trailing bytes are tolerated (the spec does not forbid them); overlaps are not.
  const sorted = [...spans].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (cur.begin < prev.end) fail(`tensors "${prev.name}" [${prev.begin}, ${prev.end}] and "${cur.name}" [${cur.begin}, ${cur.end}] overlap`);
  }

  const tensors = new Map<string, ParsedTensor>();
  for (const { name, begin, end, shape } of spans) {
    const from = bytes.byteOffset + dataStart + begin;
    let data: Float32Array;
    if (LITTLE_ENDIAN_HOST) {
      data = new Float32Array(bytes.buffer.slice(from, bytes.byteOffset + dataStart + end)); // a copy, 4-byte aligned
    } else {
      data = new Float32Array((end - begin) / 4);
      for (let i = 0; i < data.length; i++) data[i] = dv.getFloat32(dataStart + begin + 4 * i, true);
    }
    tensors.set(name, { dtype: 'F32', shape, data });
  }
  return { tensors, metadata };
}

function parseMetadata(raw: unknown, fail: (problem: string) => never): Record<string, string> {
  if (raw === undefined) return {};
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(`__metadata__ must be an object of strings, got ${show(raw)}`);
  const entries = Object.entries(raw as Record<string, unknown>);
  for (const [key, value] of entries) {
    if (typeof value !== 'string') fail(`__metadata__ value of "${key}" must be a string, got ${show(value)}`);
  }
  // fromEntries defines own properties, so a "__proto__" key cannot reach the prototype.
  return Object.fromEntries(entries) as Record<string, string>;
}
