// `gradpool dashboard`: serves every run of a registry in one read-only dashboard
// (dashboard/runs-server.ts) until Ctrl-C. This file wires the SQLite store (store.ts,
// queries.ts) to the dashboard's RegistryView; the dashboard itself never touches SQL.

import { existsSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { ConfigError } from '../../model/config.js';
import type { RegistryView } from '../../dashboard/registry-view.js';
import { startRunsServer } from '../../dashboard/runs-server.js';
import { numberFlag, parseFlags } from '../../proto/flags.js';
import { DEFAULT_REGISTRY } from '../config.js';
import { checkpointsOf, failuresOf, latestSamples, stepsAfter, validationsAfter } from './queries.js';
import { findRun, listRuns, openRegistry } from './store.js';

/** Beside a training's own dashboard (8080 by default), not on it. */
export const DEFAULT_DASHBOARD_PORT = 8090;

export const DASHBOARD_HELP = `Usage: gradpool dashboard [--registry FILE] [--host ADDR] [--port N]

Serves every run of the registry in one read-only dashboard: a sortable runs table with
live status, an overlay of the curves of the runs you tick, each run's own page (history,
samples, checkpoints, failures; live while it runs) and each sweep's runs ranked by best
validation loss. It reads the registry only: no token, no controls. Ctrl-C stops it.
  --registry FILE   the registry file (default ${DEFAULT_REGISTRY})
  --host ADDR       address to bind (default 127.0.0.1: this machine only)
  --port N          port (default ${DEFAULT_DASHBOARD_PORT}; 0 = any free port)`;

/** The dashboard's read-only view of an open registry. */
export function registryView(db: Database.Database): RegistryView {
  return {
    runs: () => listRuns(db),
    run: (id) => findRun(db, id),
    steps: (runId, after, maxPoints) => stepsAfter(db, runId, after, maxPoints),
    validations: (runId, after, maxPoints) => validationsAfter(db, runId, after, maxPoints),
    samples: (runId, limit) => latestSamples(db, runId, limit),
    checkpoints: (runId) => checkpointsOf(db, runId),
    failures: (runId, limit) => failuresOf(db, runId, limit),
  };
}

/** Parsed flags, or 'help'. */
export function parseDashboardArgs(args: string[]): { registry: string; host: string; port: number } | 'help' {
  const values = parseFlags(args, { registry: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' } }, 'dashboard');
  if (values.help) return 'help';
  const registry = (values.registry as string | undefined) ?? DEFAULT_REGISTRY;
  const host = (values.host as string | undefined) ?? '127.0.0.1';
  if (registry === '' || registry === 'none') throw new ConfigError(`--registry is ${JSON.stringify(registry)}; allowed: a registry file`);
  if (host.trim() === '') throw new ConfigError('--host is ""; allowed: an address to bind, e.g. 127.0.0.1');
  const port = numberFlag(values.port, '--port', { integer: true, min: 0, max: 65535 }) ?? DEFAULT_DASHBOARD_PORT;
  return { registry, host, port };
}

/** Runs the dashboard until SIGINT or SIGTERM (or `stop` resolves); 0 after a clean stop. */
export async function dashboardCommand(args: string[], stop?: Promise<void>): Promise<number> {
  const parsed = parseDashboardArgs(args);
  if (parsed === 'help') {
    console.log(DASHBOARD_HELP);
    return 0;
  }
  const { registry, host, port } = parsed;
  if (!existsSync(registry)) throw new ConfigError(`registry ${registry} does not exist (runs create it; --registry FILE names another)`);
  // A RegistryError (corrupt, not a database, a schema this gradpool cannot read) is the user's: exit 2.
  const db = openRegistry(registry, { readonly: true });
  let server: Awaited<ReturnType<typeof startRunsServer>>;
  try {
    server = await startRunsServer({ source: registryView(db), registry, host, port });
  } catch (e) {
    db.close();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new ConfigError(`--port ${port}: ${host}:${port} is already in use; pick another port or --port 0 for any free one`);
    if (code === 'EADDRNOTAVAIL' || code === 'EACCES' || code === 'ENOTFOUND') throw new ConfigError(`--host ${host} --port ${port}: cannot listen there (${code})`);
    throw e;
  }
  const runs = listRuns(db).length;
  console.log(`gradpool dashboard: ${runs} run${runs === 1 ? '' : 's'} of ${registry} at ${server.url}  (read-only; Ctrl-C stops)`);
  await new Promise<void>((resolve) => {
    const done = () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
    void stop?.then(done);
  });
  await server.close();
  db.close();
  return 0;
}
