// gradpool on an emulated network (test/helpers/netns.ts): a coordinator host, a NATS server
// host and three worker hosts, each its own network namespace, every link shaped to
// 100 Mbit/s each way. Faults strike mid-run — a worker's link cut for 10 s, a worker host's
// processes SIGKILLed, a worker slowed to a third of its speed — and each run must still end
// bit-identical to a local run of the same options, every token trained, every re-issued
// shard counted in the coordinator's /metrics. Needs root and iproute2: skipped elsewhere,
// failed under CI=true.

import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NATS_SERVER } from '../helpers/nats-server.js';
import { type Host, IP, ipIn, Lan, namespaceExists, netnsSupport, TC } from '../helpers/netns.js';
import {
  B, type Event, expectCleanFinish, expectRetriesCounted, expectSameRun, localRun, type NatsNode, natsServerOn, type Proc, remoteRun, type RunControl,
  runOptions, sample, T, tempDir, UNTIL_STOPPED, workerOn,
} from '../helpers/netns-run.js';
import { systemTool } from '../helpers/system-tool.js';

const support = netnsSupport();
const available = support.available && NATS_SERVER !== undefined;
const netns = systemTool('netns.test.ts', available, support.missing || 'nats-server is not installed: apt-get install nats-server');

const dir = tempDir('netns');
const options = (steps: number) => runOptions(dir, steps);

/** A local reference run (one thread, no NATS, no namespace) of the same options and steps. */
const reference = (name: string, steps: number) => localRun(join(dir, `local-${name}`), options(steps));

/** Mean seconds a worker process's shards took in a step (its threads are labelled id/thread). */
function meanShardSeconds(metrics: string, worker: string): number {
  const sum = (kind: 'sum' | 'count') =>
    [...metrics.matchAll(new RegExp(`^gradpool_worker_step_duration_seconds_${kind}\\{[^}]*worker="${worker}/\\d+"[^}]*\\} (\\S+)$`, 'gm'))]
      .reduce((n, m) => n + Number(m[1]), 0);
  return sum('sum') / sum('count');
}

describe.skipIf(netns.skip)('the emulated network itself', () => {
  it('removes what a crashed run left, keeps traffic inside, shapes and cuts links, and leaves nothing behind', async () => {
    netns.require();
    // A namespace of a run whose process is gone, with a process still inside; and one of a live process.
    const dead = spawnSync('true').pid!;
    const stale = `gpnet-netnsself-${dead}-old`;
    const live = 'gpnet-netnsself-1-keep';
    spawnSync(IP!, ['netns', 'add', stale]);
    spawnSync(IP!, ['netns', 'add', live]);
    const orphan = spawn(IP!, ['netns', 'exec', stale, 'sleep', '60'], { stdio: 'ignore' });
    const orphanExit = once(orphan, 'exit');
    while (spawnSync(IP!, ['netns', 'pids', stale], { encoding: 'utf8' }).stdout.trim() !== String(orphan.pid)) await new Promise((r) => setTimeout(r, 20));
    const lan = new Lan('netnsself', ['a', 'b'], { rateMbit: 100 });
    let sleeperExit: Promise<unknown> | null = null;
    let sleeper: ReturnType<typeof spawn> | null = null;
    try {
      await orphanExit;
      expect(orphan.signalCode).toBe('SIGKILL');
      expect(namespaceExists(stale)).toBe(false);
      expect(namespaceExists(live)).toBe(true);
      const a = lan.host('a');
      // Only the network's own route: nothing leaves it, and the root namespace holds none of its addresses.
      expect(ipIn(a, 'route').trim()).toBe('10.77.0.0/24 dev eth0 proto kernel scope link src 10.77.0.1');
      expect(spawnSync(IP!, ['-n', a.ns, 'route', 'get', '1.1.1.1'], { encoding: 'utf8' }).stderr).toMatch(/unreachable/);
      expect(spawnSync(IP!, ['-br', 'addr'], { encoding: 'utf8' }).stdout).not.toContain('10.77.0.');
      // Both directions go through a 100 Mbit/s tbf.
      const qdiscs = JSON.parse(spawnSync(TC!, ['-j', '-n', a.ns, 'qdisc', 'show', 'dev', 'eth0'], { encoding: 'utf8' }).stdout) as unknown[];
      expect(qdiscs).toEqual([expect.objectContaining({ kind: 'tbf', options: expect.objectContaining({ rate: 12_500_000 }) })]);
      expect(a.shapedBytes()).toEqual({ sent: expect.any(Number), received: expect.any(Number) }); // the switch side's tbf too
      a.cut();
      expect(ipIn(a, 'link', 'show', 'eth0')).toMatch(/NO-CARRIER/);
      a.restore();
      await new Promise((r) => setTimeout(r, 100));
      expect(ipIn(a, 'link', 'show', 'eth0')).not.toMatch(/NO-CARRIER/);
      sleeper = a.spawn('sleep', ['60']);
      sleeperExit = once(sleeper, 'exit');
      await new Promise((r) => setTimeout(r, 100));
      expect(a.pids()).toEqual([sleeper.pid]);
    } finally {
      lan.destroy();
      spawnSync(IP!, ['netns', 'del', live]);
    }
    // Destroyed: its namespaces gone, the processes in them killed.
    await sleeperExit;
    expect(sleeper!.signalCode).toBe('SIGKILL');
    for (const h of lan.hosts.values()) expect(namespaceExists(h.ns)).toBe(false);
    expect(spawnSync(IP!, ['netns', 'list'], { encoding: 'utf8' }).stdout).not.toContain(`gpnet-netnsself-${process.pid}-`);
  });
});

describe.skipIf(netns.skip)('three worker hosts, a NATS host and a coordinator host behind 100 Mbit/s links', () => {
  let lan: Lan;
  let coord: Host;
  let nats: NatsNode;
  const workers = new Map<string, Proc>();

  beforeAll(async () => {
    if (!available) return; // each test fails, saying why (CI=true)
    lan = new Lan('netns', ['coord', 'nats', 'w1', 'w2', 'w3'], { rateMbit: 100 });
    coord = lan.host('coord');
    nats = await natsServerOn(lan.host('nats'), dir);
    await Promise.all(['w1', 'w2', 'w3'].map(async (name) => workers.set(name, await workerOn(lan.host(name), nats.url, name))));
  });

  afterAll(() => {
    lan?.destroy();
  });

  const remote = (name: string, steps: number, onEvent: (e: Event, run: RunControl) => void) =>
    remoteRun(coord, nats.url, join(dir, name), options(steps), onEvent);

  it('a worker host whose link is cut for 10 s mid-run: dropped after its heartbeats lapse, its shard re-issued, taken back when the link returns; bit-identical', async () => {
    netns.require();
    const w1 = lan.host('w1');
    let restoreTimer: NodeJS.Timeout | null = null;
    let cutAt = 0;
    let restoredAt = 0;
    let rejoinedAtStep = 0;
    try {
      const r = await remote('cut', UNTIL_STOPPED, (e, run) => {
        if (e.event === 'step' && cutAt === 0) {
          w1.cut();
          cutAt = Date.now();
          restoreTimer = setTimeout(() => {
            w1.restore();
            restoredAt = Date.now();
          }, 10_000);
        }
        if (e.event === 'worker' && e.id === 'w1' && e.joined === true && restoredAt > 0 && rejoinedAtStep === 0) rejoinedAtStep = run.step;
        // After the rejoin, when nothing fails any more: read the counters, then stop.
        if (e.event === 'step' && rejoinedAtStep > 0 && (e.step as number) >= rejoinedAtStep + 10) void run.scrape().finally(run.stop);
      });
      expectCleanFinish(r, r.steps, B * T);
      const left = r.events.find((e) => e.event === 'worker' && e.id === 'w1' && e.joined === false);
      expect(left?.reason).toMatch(/no heartbeat for [\d.]+ s/);
      expect(restoredAt - cutAt).toBeGreaterThanOrEqual(10_000);
      expect(rejoinedAtStep).toBeGreaterThan(0);
      // Three worker threads again by the end: w1 serves the run after its link came back.
      expect(r.events.filter((e) => e.event === 'step').at(-1)?.workers).toBe(3);
      expect(sample(r.metrics, 'gradpool_remote_workers')).toBe(3);
      expect(expectRetriesCounted(r.metrics, r.events)).toBeGreaterThanOrEqual(1);
      // Everything the coordinator received came through its shaped link.
      expect(r.coordReceived).toBeGreaterThanOrEqual(sample(r.metrics, 'gradpool_nats_bytes_total', { direction: 'in' })!);
      expectSameRun(await reference('cut', r.steps), r.out);
    } finally {
      if (restoreTimer) clearTimeout(restoreTimer);
      w1.restore();
    }
  }, 120_000);

  it('a worker host slowed to a third of its speed for a whole run: every step waits for it, nothing is re-issued or lost; bit-identical', async () => {
    netns.require();
    const steps = 20;
    const local = reference('slow', steps);
    const resume = lan.host('w3').slow(1 / 3);
    const started = Date.now();
    let r;
    let slowed;
    try {
      r = await remote('slow', steps, (e, run) => {
        if (e.event === 'step' && (e.step as number) >= steps - 10) void run.scrape();
      });
    } finally {
      slowed = resume();
    }
    // The worker process itself was among those stopped, period after period, for the whole run.
    expect(slowed.pids).toContain(workers.get('w3')!.proc.pid);
    expect(slowed.periods).toBeGreaterThanOrEqual(Math.floor((Date.now() - started) / 100 / 2));
    expectCleanFinish(r, steps, B * T);
    // No shard missed its 20 s deadline: a slow worker is waited for, not re-issued.
    expect(expectRetriesCounted(r.metrics, r.events)).toBe(0);
    const others = (meanShardSeconds(r.metrics, 'w1') + meanShardSeconds(r.metrics, 'w2')) / 2;
    const slow = meanShardSeconds(r.metrics, 'w3');
    console.log(`netns.test.ts: w3 at a third of its speed: ${(slow * 1000).toFixed(1)} ms a shard, the others ${(others * 1000).toFixed(1)} ms; ${r.msPerStep.toFixed(0)} ms a step`);
    expectSameRun(await local, r.out);
  }, 120_000);

  // Last: it leaves w2's host without a worker.
  it('a worker host whose processes are SIGKILLed mid-run: its shard re-issued to the others; bit-identical', async () => {
    netns.require();
    const w2 = lan.host('w2');
    let killed: Promise<number[]> | null = null;
    let leftAtStep = 0;
    const r = await remote('kill', UNTIL_STOPPED, (e, run) => {
      // Right after a step's line, the next step's shards are out: one of them is on w2.
      if (e.event === 'step' && !killed) killed = w2.killAll();
      if (e.event === 'worker' && e.id === 'w2' && e.joined === false) leftAtStep = run.step;
      if (e.event === 'step' && leftAtStep > 0 && (e.step as number) >= leftAtStep + 10) void run.scrape().finally(run.stop);
    });
    expect(await killed).toContain(workers.get('w2')!.proc.pid);
    expect(workers.get('w2')!.proc.signalCode).toBe('SIGKILL');
    expectCleanFinish(r, r.steps, B * T);
    expect(leftAtStep).toBeGreaterThan(0);
    expect(r.events.filter((e) => e.event === 'step').at(-1)?.workers).toBe(2);
    expect(expectRetriesCounted(r.metrics, r.events)).toBeGreaterThanOrEqual(1);
    expectSameRun(await reference('kill', r.steps), r.out);
  }, 120_000);
});
