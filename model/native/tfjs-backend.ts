// The 'native' tfjs backend: the pure-JS cpu backend (tensor data are plain
// Float32Arrays in JS memory) with its matrix product and 2-D transpose replaced by
// the native kernel set, which reads and writes those arrays in place.
//
//   tf op ─▶ kernel registry ─▶ 'native': BatchMatMul, Transpose ─▶ addon (C, SIMD)
//                                         every other kernel     ─▶ the cpu backend's (JS)
//                                         gradpool fused kernels ─▶ addon where it has one (kernels.ts)

import * as tf from '@tensorflow/tfjs';
import { type CpuBackendLike, size } from '../kernels.js';
import { type NativeAddon, nativeAddon, nativeLoadError } from './addon.js';
import { noteFree, noteWrite, take } from './arena.js';
import { timerStart, timerStop } from './profile.js';

export const NATIVE_BACKEND = 'native';


// Right-hand operands packed whole for reuse. A step multiplies by the same recurrent
// weights T times (h·W_h forward, dA·W_hᵀ backward): the second time an operand's data
// is used it is packed once and kept with its data id (tensors are immutable; the entry
// goes with the id), so the products that follow skip the packing. Same panels, same
// kernel: the same bits (tested).
const seenOnce = new WeakSet<object>();
const packedOperands = new WeakMap<object, { P: Float32Array; N: number; K: number; transB: boolean }>();
let packedProducts = 0;

/** Products run with a packed operand so far in this thread (tests). */
export function packedProductCount(): number {
  return packedProducts;
}

function packedFor(g: NativeAddon, dataId: object, B: Float32Array, N: number, K: number, transB: boolean): Float32Array | null {
  const entry = packedOperands.get(dataId);
  if (entry && entry.N === N && entry.K === K && entry.transB === transB) return entry.P;
  if (!seenOnce.has(dataId)) {
    seenOnce.add(dataId);
    return null;
  }
  if (entry) noteFree(entry.P); // another shape or transposition of the same data: the old packing goes back
  const P = take(g.packedBSize(N, K));
  noteWrite(P); // held by this entry alone; noteFree returns it when the operand's data is disposed
  g.packB(B, P, N, K, transB ? 1 : 0);
  packedOperands.set(dataId, { P, N, K, transB });
  return P;
}

function batchMatMul(g: NativeAddon): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') throw new Error(`native matMul: float32 only, got ${a.dtype} and ${b.dtype}`);
    const ra = a.shape.length;
    const rb = b.shape.length;
    const M = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
    const K = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
    const Kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
    const N = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
    if (K !== Kb) throw new Error(`native matMul: inner sizes ${K} and ${Kb} differ (shapes ${a.shape} and ${b.shape})`);
    const batchA = size(a.shape.slice(0, -2));
    const batchB = size(b.shape.slice(0, -2));
    if (batchA !== batchB && batchA !== 1 && batchB !== 1) throw new Error(`native matMul: batch sizes ${batchA} and ${batchB} do not broadcast`);
    const batch = Math.max(batchA, batchB);
    const outShape = [...(batchA >= batchB ? a.shape : b.shape).slice(0, -2), M, N];
    const be = backend as unknown as CpuBackendLike;
    const A = be.data.get(a.dataId).values;
    const B = be.data.get(b.dataId).values;
    const C = take(batch * M * N);
    const started = timerStart();
    if (batch === 1) {
      const P = packedFor(g, b.dataId, B, N, K, transposeB);
      try {
        if (P) {
          g.sgemmPacked(A, P, C, M, N, K, transposeA ? 1 : 0);
          packedProducts++;
        }
      } catch {
        // Packed on another kernel path (a test forced one): drop it and use the plain product.
        noteFree(P!);
        packedOperands.delete(b.dataId);
      }
      if (!P || !packedOperands.has(b.dataId)) g.sgemm(A, B, C, M, N, K, transposeA ? 1 : 0, transposeB ? 1 : 0);
    } else {
      for (let i = 0; i < batch; i++) {
        const ai = batchA === 1 ? 0 : i;
        const bi = batchB === 1 ? 0 : i;
        g.sgemm(A.subarray(ai * M * K, (ai + 1) * M * K), B.subarray(bi * K * N, (bi + 1) * K * N), C.subarray(i * M * N, (i + 1) * M * N), M, N, K, transposeA ? 1 : 0, transposeB ? 1 : 0);
      }
    }
    timerStop('matmul', started);
    return be.makeTensorInfo(outShape, 'float32', C);
  };
}

function transpose(g: NativeAddon, fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { perm } = args.attrs as unknown as { perm: number[] };
    if (x.dtype !== 'float32' || x.shape.length !== 2 || perm[0] !== 1) return fallback(args);
    const be = args.backend as unknown as CpuBackendLike;
    const [R, C] = x.shape;
    const out = take(R * C);
    const started = timerStart();
    g.transpose(be.data.get(x.dataId).values, out, R, C);
    timerStop('transpose', started);
    return be.makeTensorInfo([C, R], 'float32', out);
  };
}

interface CpuData {
  data: { get(dataId: object): { values: unknown } | undefined; has(dataId: object): boolean };
  write(values: unknown, shape: number[], dtype: string): object;
  move(dataId: object, values: unknown, shape: number[], dtype: string, refCount: number): void;
  disposeData(dataId: object, force?: boolean): boolean;
}

/** A cpu backend whose tensor memory goes through the arena (arena.ts): it is told what each tensor holds and when it lets go. */
function recycling(backend: tf.KernelBackend): tf.KernelBackend {
  const be = backend as unknown as CpuData;
  const write = be.write.bind(be);
  const move = be.move.bind(be);
  const disposeData = be.disposeData.bind(be);
  be.write = (values, shape, dtype) => {
    noteWrite(values);
    return write(values, shape, dtype);
  };
  be.move = (dataId, values, shape, dtype, refCount) => {
    noteWrite(values);
    move(dataId, values, shape, dtype, refCount);
  };
  be.disposeData = (dataId, force) => {
    const values = be.data.get(dataId)?.values;
    const done = disposeData(dataId, force);
    if (values !== undefined && !be.data.has(dataId)) {
      noteFree(values);
      const packed = packedOperands.get(dataId);
      if (packed) {
        packedOperands.delete(dataId);
        noteFree(packed.P);
      }
    }
    return done;
  };
  return backend;
}

let registered = false;

/** Register the 'native' backend once; throws with the reason when the addon is unavailable. */
export function registerNativeBackend(): void {
  if (registered) return;
  const g = nativeAddon();
  if (!g) throw new Error(`backend "native" unavailable: ${nativeLoadError()}`);
  const cpuFactory = tf.findBackendFactory('cpu');
  if (!cpuFactory) throw new Error('backend "native" needs the tfjs cpu backend, which is not registered');
  // Priority below wasm and cpu: never chosen implicitly.
  tf.registerBackend(NATIVE_BACKEND, () => recycling(cpuFactory() as tf.KernelBackend), 0);
  const mine = new Map<string, tf.KernelFunc>();
  for (const k of tf.getKernelsForBackend('cpu')) {
    if (k.kernelName === 'BatchMatMul' || k.kernelName === 'Transpose') mine.set(k.kernelName, k.kernelFunc);
  }
  const existing = new Set(tf.getKernelsForBackend(NATIVE_BACKEND).map((k) => k.kernelName));
  for (const k of tf.getKernelsForBackend('cpu')) {
    if (existing.has(k.kernelName) || mine.has(k.kernelName)) continue;
    tf.registerKernel({ ...k, backendName: NATIVE_BACKEND });
  }
  tf.registerKernel({ kernelName: 'BatchMatMul', backendName: NATIVE_BACKEND, kernelFunc: batchMatMul(g) });
  tf.registerKernel({ kernelName: 'Transpose', backendName: NATIVE_BACKEND, kernelFunc: transpose(g, mine.get('Transpose')!) });
  registered = true;
}
