// Test helper: Debian's nats-server (scripts/system-deps.mjs, npm test's pre-test step, installs
// it) on loopback with a config written by the test, on a free port; restartable on the same port.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NATS_SERVER = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => {
  try {
    execFileSync(p, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
});

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface NatsServer {
  port: number;
  url: string;
  dir: string;
  /** Kill (SIGKILL) the server process. */
  kill(): Promise<void>;
  /** Start it again on the same port with the same config. */
  restart(): Promise<void>;
  /** Kill it for good and remove its directory (its config). */
  stop(): Promise<void>;
  log(): string;
}

/**
 * Start nats-server on 127.0.0.1 with `extra` appended to its config (authorization,
 * tls, max_payload, ...). Resolves once it accepts connections.
 */
export async function startNatsServer(extra = ''): Promise<NatsServer> {
  if (!NATS_SERVER) throw new Error('nats-server is not installed: apt-get install nats-server (npm test installs it as root)');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'gradpool-nats-'));
  const conf = join(dir, 'nats.conf');
  writeFileSync(conf, `listen: 127.0.0.1:${port}\n${extra}\n`);
  let proc: ChildProcess | null = null;
  let out = '';
  const launch = async () => {
    proc = spawn(NATS_SERVER!, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    const until = Date.now() + 10_000;
    while (!/Server is ready/.test(out)) {
      if (Date.now() > until) throw new Error(`nats-server did not start:\n${out}`);
      if (proc.exitCode !== null) throw new Error(`nats-server exited with ${proc.exitCode}:\n${out}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const kill = async () => {
    const p = proc as ChildProcess | null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  };
  await launch();
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    dir,
    kill,
    restart: async () => {
      await kill();
      out = '';
      await launch();
    },
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
    },
    log: () => out,
  };
}
