// The all-runs dashboard (`gradpool dashboard`): every run of a registry, read-only. It is
// handed a RegistryView (the coordinator wires its SQLite store to it) and only reads: no
// token, no control route. The pages poll the JSON API: running runs write the registry in
// batches, once a second, so polling every two seconds shows them live.
//
//   GET /                          the runs table and the compare view   (public/runs.html)
//   GET /runs/:id                  one run's page                         (public/run.html)
//   GET /sweeps/:id                one sweep's runs, ranked               (public/sweep.html)
//   GET /api/runs                  { registry, now, runs }
//   GET /api/runs/:id              the run
//   GET /api/runs/:id/history      { run, steps, validations }; ?after=STEP&validationsAfter=STEP: what came since
//   GET /api/runs/:id/samples      the latest samples (?limit=N), /checkpoints, /failures
//   GET /api/compare?runs=ID,ID…   [{ run, steps, validations }] for an overlay of their curves
//   GET /api/sweeps/:id            { sweepId, keys, runs: [{ rank, run, values }] }

import type { AddressInfo } from 'node:net';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { publicDir, uplotDir } from './pages.js';
import type { RegistryRun, RegistryView } from './registry-view.js';
import { rankSweep } from './sweeps.js';

/** Points of one run's curves in a page load (a longer history is thinned evenly). */
export const RUN_MAX_POINTS = 5000;
/** Points per run in the compare view, and how many runs it overlays at most. */
export const COMPARE_MAX_POINTS = 2000;
export const MAX_COMPARE_RUNS = 20;
const MAX_SAMPLES = 200;
const MAX_FAILURES = 200;

const ERROR_CODES: Record<number, string> = { 400: 'bad_request', 404: 'not_found', 405: 'method_not_allowed', 500: 'internal' };

/** A 4xx answer whose message names the problem. */
function httpError(statusCode: number, message: string): Error {
  return Object.assign(new Error(message), { statusCode });
}

/** A non-negative integer query parameter; absent → `fallback`. */
function intQuery(value: unknown, name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^\d+$/.test(value) || Number(value) > max) {
    throw httpError(400, `query parameter ${name} is ${JSON.stringify(value)}; allowed: an integer from 0 to ${max}`);
  }
  return Number(value);
}

export function buildRunsServer(opts: { source: RegistryView; registry: string; logger?: boolean }): FastifyInstance {
  const { source, registry } = opts;
  const app = Fastify({ logger: opts.logger ?? false, requestTimeout: 10_000 });
  app.setErrorHandler((error: FastifyError, request, reply) => {
    // An error the data source marks as the caller's (an ambiguous id prefix) is a bad request.
    const input = (error as { kind?: unknown }).kind === 'input';
    const status = input ? 400 : error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (status >= 500) request.log.error(error);
    reply.code(status).send({ error: ERROR_CODES[status] ?? (status < 500 ? 'bad_request' : 'internal'), message: error.message });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: 'not_found', message: `no route for ${request.method} ${request.url}` });
  });

  const runOr404 = (id: string): RegistryRun => {
    const run = source.run(id);
    if (!run) throw httpError(404, `no run "${id}" in ${registry}`);
    return run;
  };

  app.register(async (pages) => {
    const root = publicDir();
    await pages.register(fastifyStatic, { root, prefix: '/static/', index: false });
    await pages.register(fastifyStatic, { root: uplotDir(), prefix: '/vendor/uplot/', decorateReply: false, index: false, allowedPath: (p) => /^\/uPlot\.(iife\.min\.js|min\.css)$/.test(p) });
    const page = (file: string) => (_request: unknown, reply: FastifyReply) => reply.type('text/html; charset=utf-8').sendFile(file, root);
    pages.get('/', page('runs.html'));
    pages.get('/runs/:id', page('run.html'));
    pages.get('/sweeps/:id', page('sweep.html'));
  });

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/api/runs', async () => ({ registry, now: Date.now(), runs: source.runs() }));
  app.get<{ Params: { id: string } }>('/api/runs/:id', async (request) => runOr404(request.params.id));
  app.get<{ Params: { id: string }; Querystring: { after?: string; validationsAfter?: string } }>('/api/runs/:id/history', async (request) => {
    const after = intQuery(request.query.after, 'after', 0);
    // A validation of step s is written after step s itself: a page following a run keeps a cursor for each.
    const validationsAfter = intQuery(request.query.validationsAfter, 'validationsAfter', after);
    const run = runOr404(request.params.id);
    return { run, steps: source.steps(run.id, after, RUN_MAX_POINTS), validations: source.validations(run.id, validationsAfter, RUN_MAX_POINTS) };
  });
  app.get<{ Params: { id: string }; Querystring: { limit?: string } }>('/api/runs/:id/samples', async (request) => {
    const limit = intQuery(request.query.limit, 'limit', 12, MAX_SAMPLES);
    return source.samples(runOr404(request.params.id).id, limit);
  });
  app.get<{ Params: { id: string } }>('/api/runs/:id/checkpoints', async (request) => source.checkpoints(runOr404(request.params.id).id));
  app.get<{ Params: { id: string } }>('/api/runs/:id/failures', async (request) => source.failures(runOr404(request.params.id).id, MAX_FAILURES));
  app.get<{ Querystring: { runs?: string } }>('/api/compare', async (request) => {
    const ids = [...new Set((request.query.runs ?? '').split(',').map((s) => s.trim()).filter(Boolean))];
    if (ids.length === 0) throw httpError(400, 'query parameter runs is missing: give run ids separated by commas, e.g. /api/compare?runs=ID,ID');
    if (ids.length > MAX_COMPARE_RUNS) throw httpError(400, `query parameter runs names ${ids.length} runs; at most ${MAX_COMPARE_RUNS} can be compared at once`);
    return ids.map(runOr404).map((run) => ({
      run, steps: source.steps(run.id, 0, COMPARE_MAX_POINTS), validations: source.validations(run.id, 0, COMPARE_MAX_POINTS),
    }));
  });
  app.get<{ Params: { id: string } }>('/api/sweeps/:id', async (request) => {
    const table = rankSweep(source.runs(), request.params.id);
    if (!table) throw httpError(404, `no run of sweep "${request.params.id}" in ${registry}`);
    return table;
  });
  return app;
}

/** Listens on host:port (port 0: any free port; host defaults to loopback); `url` names the address bound. */
export async function startRunsServer(opts: { source: RegistryView; registry: string; host?: string; port: number }): Promise<{ url: string; app: FastifyInstance; close(): Promise<void> }> {
  const host = opts.host ?? '127.0.0.1';
  if (host === '') throw new TypeError('startRunsServer: host must be a non-empty string');
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new RangeError(`startRunsServer: port must be an integer from 0 to 65535, got ${opts.port}`);
  const app = buildRunsServer({ source: opts.source, registry: opts.registry });
  await app.listen({ host, port: opts.port });
  const address = app.server.address() as AddressInfo;
  // A wildcard bind is reached through loopback from this machine.
  const shown = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address;
  return { url: `http://${shown.includes(':') ? `[${shown}]` : shown}:${address.port}`, app, close: () => app.close() };
}
