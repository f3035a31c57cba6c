// `gradpool info`: what this machine gives gradpool — the backends, whether the native
// kernels loaded (and why not), the kernel path they use, the CPU's features, versions.

import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { BACKENDS, DEFAULT_BACKEND, nativeInfo, tf } from '../model/backend.js';
import { parseFlags } from '../proto/flags.js';

const INFO_HELP = `Usage: gradpool info [--json]

Prints the backends, whether the native kernels loaded (and why not), their kernel path
(GRADPOOL_ISA=avx512|avx2|generic forces one), the CPU and its features, and versions.`;

export interface MachineInfo {
  gradpool: string;
  node: string;
  tfjs: string;
  backends: readonly string[];
  defaultBackend: string;
  native: ReturnType<typeof nativeInfo>;
  cpu: { model: string; cores: number };
}

/** gradpool's package.json, from the source tree (coordinator/) or the build (dist/coordinator/). */
function ownVersion(): string {
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'gradpool' && pkg.version) return pkg.version;
    } catch {
      // Not at this level: look one up.
    }
  }
  return 'unknown';
}

export function machineInfo(): MachineInfo {
  const cpu = cpus();
  return {
    gradpool: ownVersion(),
    node: process.versions.node,
    tfjs: tf.version.tfjs,
    backends: BACKENDS,
    defaultBackend: DEFAULT_BACKEND,
    native: nativeInfo(),
    cpu: { model: cpu[0]?.model.trim() ?? 'unknown', cores: cpu.length },
  };
}

export async function infoCommand(args: string[]): Promise<number> {
  const values = parseFlags(args, { json: { type: 'boolean' } }, 'info');
  if (values.help) {
    console.log(INFO_HELP);
    return 0;
  }
  const info = machineInfo();
  if (values.json) {
    console.log(JSON.stringify(info));
    return 0;
  }
  const n = info.native;
  const features = n.features ? Object.entries(n.features).filter(([, on]) => on).map(([f]) => f).join(' ') : '';
  console.log(
    [
      `gradpool ${info.gradpool}, Node ${info.node}, tfjs ${info.tfjs}`,
      `backends: ${info.backends.join(', ')} (default ${info.defaultBackend})`,
      n.available ? `native kernels: loaded, path ${n.isa} (this CPU can run: ${n.paths!.join(', ')})` : `native kernels: not available (${n.reason})`,
      `CPU: ${info.cpu.model}, ${info.cpu.cores} cores${features ? `; features: ${features}` : ''}`,
    ].join('\n'),
  );
  return 0;
}
