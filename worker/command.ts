// `gradpool worker --nats URL`: the command's flags, help and lifecycle around a WorkerHost
// (connect, serve until Ctrl-C or the connection ends, finish the shards held, leave).
// coordinator/cli.ts only dispatches here; bad input throws an InputError (exit code 2).

import { availableParallelism } from 'node:os';
import { InputError, MAX_THREADS, numberFlag, parseFlags } from '../proto/flags.js';
import { closeNats, connectNats, NATS_FLAGS, NATS_HELP, natsSettingsFrom, natsWarnings, processId } from '../proto/nats.js';
import { WorkerHost } from './host.js';

const WORKER_HELP = `Usage: gradpool worker --nats URL [options]

Serves shard tasks of gradpool runs over NATS until stopped (Ctrl-C finishes the
shards it holds, then leaves). It opens no listening socket of its own.
  --threads N                            replica threads (default: available parallelism, ${availableParallelism()} here)
  --run ID                               serve only this run (default: any run under the prefix)
  --name ID                              worker id in subjects, logs and metrics (default: worker-<host>-<pid>-<random>)
${NATS_HELP}`;

const FLAGS = { threads: { type: 'string' }, run: { type: 'string' }, name: { type: 'string' }, ...NATS_FLAGS } as const;

const isId = (v: unknown): v is string => typeof v === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(v);

/** The worker's settings from its flags; 'help' for --help. */
export function parseWorkerArgs(args: string[]) {
  const values = parseFlags(args, FLAGS, 'worker');
  if (values.help) return 'help' as const;
  if (values.nats === undefined) throw new InputError(`--nats URL is required\n\n${WORKER_HELP}`);
  const nats = natsSettingsFrom(values)!;
  const threads = numberFlag(values.threads, '--threads', { integer: true, min: 1, max: MAX_THREADS }) ?? Math.max(1, availableParallelism());
  if (values.run !== undefined && !isId(values.run)) throw new InputError(`--run is ${JSON.stringify(values.run)}; allowed: a run id (letters, digits, _ and -)`);
  if (values.name !== undefined && !isId(values.name)) throw new InputError(`--name is ${JSON.stringify(values.name)}; allowed: 1 to 64 letters, digits, _ and -`);
  return { nats, threads, run: (values.run as string | undefined) ?? null, id: (values.name as string | undefined) ?? processId('worker') };
}

/**
 * `gradpool worker ...`; resolves with 0 after a clean stop. A second Ctrl-C calls `abort`
 * (the caller exits with its interrupt code without waiting for the shards held).
 */
export async function workerCommand(args: string[], abort: () => void): Promise<number> {
  const parsed = parseWorkerArgs(args);
  if (parsed === 'help') {
    console.log(WORKER_HELP);
    return 0;
  }
  const { nats: settings, threads, run, id } = parsed;
  for (const w of natsWarnings(settings)) console.error(`gradpool worker: warning: ${w}`);
  const nc = await connectNats(settings, `gradpool ${id}`);
  const log = (line: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
  const host = new WorkerHost(nc, { id, prefix: settings.prefix, threads, run, idleMs: 10 * 60_000, heartbeatMs: 1_000, log });
  host.start();
  log(`gradpool worker ${id}: ${threads} threads, serving ${run ? `run ${run}` : 'any run'} on ${settings.display} (subjects ${settings.prefix}.*)`);
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') log(`disconnected from NATS; reconnecting…`);
      else if (s.type === 'reconnect') log('reconnected to NATS');
    }
  })();
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return abort();
      stopping = true;
      log('stopping: finishing the shards held (again to abort)…');
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    void nc.closed().then((err) => {
      if (err) log(`NATS connection closed: ${err.message}`);
      resolve();
    });
  });
  await host.close();
  await closeNats(nc);
  log(`gradpool worker ${id}: served ${host.served} shards (${host.failed} failed); bye`);
  return 0;
}
