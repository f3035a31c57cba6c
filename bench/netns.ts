// An emulated network made of Linux network namespaces, for the tests (test/helpers/netns.ts
// re-exports it) and the shaped-link bench (bench/shaped.ts); needs root and iproute2. One
// namespace per host, whose eth0 is one end of a veth pair; the other end is a port of a
// bridge in a switch namespace of its own. Both directions of every link
// are rate-limited by tbf (this kernel has no netem: no delay, no loss). The root namespace
// gets no interface and no host a default route: traffic stays inside the namespaces and
// their loopbacks.
//
//   host coord 10.77.0.1  eth0 [tbf out] ══ veth ══ p-coord [tbf in] ─┐
//   host nats  10.77.0.2  eth0 [tbf out] ══ veth ══ p-nats  [tbf in] ─┼─ br0   (switch namespace)
//   host w1    10.77.0.3  eth0 [tbf out] ══ veth ══ p-w1    [tbf in] ─┘
//
// Namespaces are named gpnet-<tag>-<pid>-<host>: a tag per test file (or bench) and the pid of
// the process, so parallel runs never clash. Namespaces of the same tag whose process is gone (a
// crashed run) are removed, with whatever still runs in them, before new ones are made.

import { type ChildProcess, execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const SUBNET = '10.77.0';

/** The path of a system tool, or null. */
function tool(name: string): string | null {
  return ['/usr/sbin', '/sbin', '/usr/bin', '/bin'].map((dir) => `${dir}/${name}`).find((p) => existsSync(p)) ?? null;
}

/** Where ip and tc are (null: not installed). */
export const IP = tool('ip');
export const TC = tool('tc');

/** Runs a command, throwing with its stderr and the command line on failure. */
function run(command: string, args: string[]): string {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr.trim()}`);
  return r.stdout;
}

const ip = (...args: string[]) => run(IP!, args);
const tc = (...args: string[]) => run(TC!, args);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Processes living in a namespace. */
function pidsIn(ns: string): number[] {
  return ip('netns', 'pids', ns).split('\n').filter(Boolean).map(Number);
}

/** SIGKILLs everything in a namespace, then removes it; never throws (also used after a failure). */
function removeNamespace(ns: string): void {
  let pids: number[] = [];
  try {
    pids = pidsIn(ns);
  } catch {
    // The namespace is gone already.
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // It exited meanwhile.
    }
  }
  spawnSync(IP!, ['netns', 'del', ns], { stdio: 'ignore' });
}

function namespaces(): string[] {
  return ip('netns', 'list').split('\n').map((line) => line.split(' ')[0]).filter(Boolean);
}

/** Whether this machine lets a test build the network: tried once on a scratch namespace. */
export function netnsSupport(): { available: boolean; missing: string } {
  const no = (missing: string) => ({ available: false, missing });
  if (!IP) return no('the network-namespace tests need ip (iproute2): apt-get install iproute2');
  if (!TC) return no('the network-namespace tests need tc (iproute2): apt-get install iproute2');
  if (!tool('ss')) return no('the network-namespace tests need ss (iproute2): apt-get install iproute2');
  if (process.getuid?.() !== 0) return no('the network-namespace tests need root (ip netns add)');
  const probe = `gpnet-probe-${process.pid}-x`;
  try {
    removeStale('probe');
    ip('netns', 'add', probe);
    ip('-n', probe, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', probe, 'link', 'add', 'vprobe0', 'type', 'veth', 'peer', 'name', 'vprobe1');
    ip('-n', probe, 'link', 'set', 'vprobe0', 'master', 'br0');
    tc('-n', probe, 'qdisc', 'add', 'dev', 'vprobe1', 'root', 'tbf', 'rate', '100mbit', 'burst', '128kb', 'latency', '50ms');
    return { available: true, missing: '' };
  } catch (e) {
    return no(`the network-namespace tests cannot build a network here: ${(e as Error).message}`);
  } finally {
    removeNamespace(probe);
  }
}

/** One host of the network: a namespace with eth0 and lo. */
export class Host {
  constructor(
    readonly name: string,
    readonly ns: string,
    readonly address: string,
    private readonly switchNs: string,
  ) {}

  /** The switch's side of this host's link. */
  private get port(): string {
    return `p-${this.name}`;
  }

  /** A process inside the host (`ip netns exec` execs it, so its pid is the command's). */
  spawn(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
    return spawn(IP!, ['netns', 'exec', this.ns, command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  }

  /** A command's stdout, run inside the host. */
  exec(command: string, args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(IP!, ['netns', 'exec', this.ns, command, ...args], { encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${command} in ${this.name}: ${err.message} ${stderr}`)) : resolve(stdout),
      );
    });
  }

  /** GET a URL from inside the host (its loopback is its own), with this Node. */
  fetchText(url: string): Promise<string> {
    const script = 'fetch(process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(String(e)); process.exit(1); })';
    return this.exec(process.execPath, ['-e', script, url]);
  }

  pids(): number[] {
    return pidsIn(this.ns);
  }

  /** SIGKILLs every process of the host, as a power cut would; resolves when none is left. */
  async killAll(): Promise<number[]> {
    const pids = this.pids();
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // It exited meanwhile.
      }
    }
    const until = Date.now() + 10_000;
    while (pids.some(alive) && this.pids().length > 0) {
      if (Date.now() > until) throw new Error(`processes of ${this.name} survived SIGKILL: ${this.pids().join(' ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return pids;
  }

  /** Pulls the cable at the switch: the host's eth0 loses its carrier; addresses and routes stay. */
  cut(): void {
    ip('-n', this.switchNs, 'link', 'set', this.port, 'down');
  }

  restore(): void {
    ip('-n', this.switchNs, 'link', 'set', this.port, 'up');
  }

  /** Bytes the link's two tbf shapers let through: sent by the host, and sent to it. */
  shapedBytes(): { sent: number; received: number } {
    const { sent, received } = this.linkStats();
    return { sent: sent.bytes, received: received.bytes };
  }

  /** The counters of the link's two tbf shapers: the host's sending side (its eth0) and receiving side (the switch's port). */
  linkStats(): { sent: ShaperStats; received: ShaperStats } {
    const stats = (args: string[]): ShaperStats => {
      const q = (JSON.parse(tc('-s', '-j', ...args)) as ({ kind: string } & ShaperStats)[]).find((x) => x.kind === 'tbf');
      if (!q) throw new Error(`no tbf qdisc on ${args.join(' ')}`);
      return { bytes: q.bytes, packets: q.packets, drops: q.drops, overlimits: q.overlimits };
    };
    return { sent: stats(['-n', this.ns, 'qdisc', 'show', 'dev', 'eth0']), received: stats(['-n', this.switchNs, 'qdisc', 'show', 'dev', this.port]) };
  }

  /**
   * Slows every process of the host to `fraction` of its speed by duty cycling: in each
   * period they run for fraction·period, then are stopped (SIGSTOP) for the rest. Returns the
   * function that ends it (SIGCONT), which says which processes were slowed and for how many
   * periods. On a busy machine the kernel's scheduler favours a process just continued, so the
   * slowdown it sees is less than 1/fraction.
   */
  slow(fraction: number, periodMs = 100): () => { pids: number[]; periods: number } {
    let stopped = false;
    let timer: NodeJS.Timeout | null = null;
    let periods = 0;
    const slowed = new Set<number>();
    // Listed once a second, not every period: listing runs `ip`, which costs more than a period's signals.
    let pids = this.pids();
    const relist = setInterval(() => (pids = this.pids()), 1_000);
    const signal = (sig: NodeJS.Signals) => {
      for (const pid of pids) {
        try {
          process.kill(pid, sig);
          slowed.add(pid);
        } catch {
          // It exited since the last listing.
        }
      }
    };
    const cycle = () => {
      if (stopped) return;
      signal('SIGCONT');
      timer = setTimeout(() => {
        if (stopped) return;
        signal('SIGSTOP');
        periods += 1;
        timer = setTimeout(cycle, periodMs * (1 - fraction));
      }, periodMs * fraction);
    };
    cycle();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      clearInterval(relist);
      signal('SIGCONT');
      return { pids: [...slowed], periods };
    };
  }
}

/** One tbf shaper's counters since the link was made (`tc -s`). */
export interface ShaperStats {
  bytes: number;
  packets: number;
  /** Packets dropped because the shaper's queue was full. */
  drops: number;
  /** Times a packet had to wait for tokens. */
  overlimits: number;
}

export interface LanOptions {
  /** Rate of each direction of every link (tbf). */
  rateMbit: number;
  /** tbf's bucket: bytes that pass at line speed after an idle moment (default 128 KiB). */
  burstKb?: number;
  /** tbf's queue, as the longest a packet may wait in it (default 50 ms): a fuller queue drops. */
  latencyMs?: number;
}

/** The tc arguments that shape one direction of a link. */
export function shaperArgs(opts: LanOptions): string[] {
  return ['root', 'tbf', 'rate', `${opts.rateMbit}mbit`, 'burst', `${opts.burstKb ?? 128}kb`, 'latency', `${opts.latencyMs ?? 50}ms`];
}

/** Hosts on one switch; `destroy()` removes everything (also run at process exit). */
export class Lan {
  readonly hosts = new Map<string, Host>();
  /** The namespace of the bridge: its ports p-<host> carry every link (their counters see all the traffic). */
  readonly switchNs: string;
  private destroyed = false;
  private readonly onExit = () => this.destroy();

  /** `tag` names the test file (letters and digits); `names` the hosts, ≤ 13 characters each. */
  constructor(tag: string, names: string[], opts: LanOptions) {
    if (!/^[a-z0-9]+$/.test(tag)) throw new Error(`netns tag "${tag}": lower-case letters and digits only`);
    removeStale(tag);
    const prefix = `gpnet-${tag}-${process.pid}`;
    this.switchNs = `${prefix}-switch`;
    process.once('exit', this.onExit);
    try {
      ip('netns', 'add', this.switchNs);
      ip('-n', this.switchNs, 'link', 'set', 'lo', 'up');
      ip('-n', this.switchNs, 'link', 'add', 'br0', 'type', 'bridge');
      ip('-n', this.switchNs, 'link', 'set', 'br0', 'up');
      names.forEach((name, i) => this.addHost(name, `${prefix}-${name}`, `${SUBNET}.${i + 1}`, opts));
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  private addHost(name: string, ns: string, address: string, opts: LanOptions): void {
    if (!/^[a-z0-9]{1,13}$/.test(name)) throw new Error(`host name "${name}": 1 to 13 lower-case letters and digits (it names an interface)`);
    const port = `p-${name}`;
    const shape = shaperArgs(opts);
    ip('netns', 'add', ns);
    // Made inside the switch namespace with its peer moved straight into the host's: no name
    // ever exists in the root namespace, where a parallel run could hold it.
    ip('-n', this.switchNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('-n', this.switchNs, 'link', 'set', port, 'master', 'br0', 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    tc('-n', ns, 'qdisc', 'add', 'dev', 'eth0', ...shape);
    tc('-n', this.switchNs, 'qdisc', 'add', 'dev', port, ...shape);
    this.hosts.set(name, new Host(name, ns, address, this.switchNs));
  }

  host(name: string): Host {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no host "${name}" on this network (hosts: ${[...this.hosts.keys()].join(', ')})`);
    return h;
  }

  /** Kills every process in the network's namespaces and removes them; safe to call twice. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.removeListener('exit', this.onExit);
    for (const h of this.hosts.values()) removeNamespace(h.ns);
    removeNamespace(this.switchNs);
  }
}

/** Removes the namespaces a crashed run of the same test file left behind. */
function removeStale(tag: string): void {
  const mine = new RegExp(`^gpnet-${tag}-(\\d+)-`);
  for (const ns of namespaces()) {
    const pid = Number(mine.exec(ns)?.[1] ?? NaN);
    if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) removeNamespace(ns);
  }
}

/** For tests of this helper: whether a namespace of that name exists. */
export function namespaceExists(ns: string): boolean {
  return namespaces().includes(ns);
}

/** Synchronous `ip` inside a host, for checks (routes, addresses). */
export function ipIn(host: Host, ...args: string[]): string {
  return execFileSync(IP!, ['-n', host.ns, ...args], { encoding: 'utf8' });
}
