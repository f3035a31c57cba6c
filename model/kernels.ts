// The kernel seam: gradpool's fused elementwise kernels, written once over plain
// Float32Arrays and registered with tfjs for the wasm, cpu and native backends, so
// they read and write tensor memory in place (no copies, one dispatch per fused op).
// A kernel may carry a `native` variant (the C kernel set) used on the native backend.
//
// A kernel declares its output shapes from its inputs and attributes, then fills
// the outputs. On wasm, tensor memory is a view of the module's heap, which may
// grow (and detach old views) on allocation: so all outputs are allocated first
// and every view is taken afterwards.

import * as tf from '@tensorflow/tfjs';
import { take } from './native/arena.js';
import { timerStart, timerStop } from './native/profile.js';

export type Attrs = Record<string, unknown>;

export interface KernelDef {
  /** Output shapes, given the input shapes (an absent input has shape null). */
  outputs(shapes: (readonly number[] | null)[], attrs: Attrs): number[][];
  /** Fill outputs from inputs. Absent inputs are null. */
  run(inputs: (Float32Array | null)[], outputs: Float32Array[], attrs: Attrs): void;
  /**
   * The same on the native backend, when the C kernel set has it (null: use `run`);
   * asked once per call, so it may decline cases it does not cover by returning null.
   */
  native?: (attrs: Attrs, inputs: (Float32Array | null)[]) => KernelDef['run'] | null;
  /** The native variant times its own parts for the step profile (profile.ts); the call is not timed as a whole. */
  selfTimed?: boolean;
}

type BackendKind = 'wasm' | 'cpu' | 'native';

const defs = new Map<string, KernelDef>();

/** Define a kernel and register it with tfjs for every backend (at module load). */
export function defineKernel(name: string, def: KernelDef): void {
  if (defs.has(name)) throw new Error(`gradpool kernel "${name}" defined twice`);
  defs.set(name, def);
  for (const backendName of ['wasm', 'cpu', 'native'] as const) tf.registerKernel(kernelFor(name, def, backendName));
}

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array;
}
/** What gradpool uses of tfjs's cpu backend (also the base of the native backend): its tensors are JS arrays. */
export interface CpuBackendLike {
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): tf.TensorInfo;
  data: { get(dataId: object): { values: Float32Array } };
}

/** Elements of a tensor of this shape. */
export function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function kernelFor(name: string, def: KernelDef, backendName: BackendKind): tf.KernelConfig {
  return {
    kernelName: name,
    backendName,
    kernelFunc: ({ inputs, attrs, backend }) => {
      const n = (attrs as Attrs).__n as number;
      const infos: (tf.TensorInfo | null)[] = [];
      for (let i = 0; i < n; i++) infos.push((inputs as Record<string, tf.TensorInfo>)[i] ?? null);
      for (const info of infos) {
        if (info && info.dtype !== 'float32') throw new Error(`${name}: inputs must be float32, got ${info.dtype}`);
      }
      const shapes = def.outputs(
        infos.map((t) => (t ? t.shape : null)),
        attrs as Attrs,
      );
      if (backendName === 'wasm') {
        const be = backend as unknown as WasmBackendLike;
        const outs = shapes.map((s) => be.makeOutput(s, 'float32'));
        const inViews = infos.map((t) => (t ? be.typedArrayFromHeap(t) : null));
        const outViews = outs.map((o) => be.typedArrayFromHeap(o));
        def.run(inViews, outViews, attrs as Attrs);
        return outs;
      }
      // cpu and native: tensor data are JS Float32Arrays.
      const be = backend as unknown as CpuBackendLike;
      const outViews = shapes.map((s) => (backendName === 'native' ? take(size(s)) : new Float32Array(size(s))));
      const inViews = infos.map((t) => (t ? be.data.get(t.dataId).values : null));
      const nativeRun = backendName === 'native' ? def.native?.(attrs as Attrs, inViews) : null;
      const run = nativeRun || def.run;
      const started = nativeRun && def.selfTimed ? -1 : timerStart();
      run(inViews, outViews, attrs as Attrs);
      timerStop('fused', started);
      return shapes.map((s, i) => be.makeTensorInfo(s, 'float32', outViews[i]));
    },
  };
}

/** Run a registered gradpool kernel; returns its outputs as tensors (caller owns them). */
export function runKernel(name: string, inputs: (tf.Tensor | null | undefined)[], attrs: Attrs = {}): tf.Tensor[] {
  if (!defs.has(name)) throw new Error(`no gradpool kernel "${name}"`);
  const named: Record<string, tf.Tensor> = {};
  inputs.forEach((t, i) => {
    if (t) named[i] = t;
  });
  const out = tf.engine().runKernel(name, named, { ...attrs, __n: inputs.length } as never);
  return (Array.isArray(out) ? out : [out]) as tf.Tensor[];
}
