// The coordinator's HTTP server: health, run info and the token-protected control routes
// (scale, checkpoint, stop). Route modules are fastify plugins registered by buildServer;
// the dashboard (metrics, SSE, pages) adds its own modules beside controlRoutes.

import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import { bearerAuth, type BearerHook } from './auth.js';
import { galleryRoutes } from './gallery.js';
import { type MetricsSource, pageRoutes } from './pages.js';
import { eventRoutes } from './stream.js';
import type { GalleryView, RunView } from './view.js';

/** What the server may ask of a running training run. */
export interface RunControl {
  /** Read-only facts about the run (config, step, workers, ...); served without a token. */
  runInfo(): Record<string, unknown>;
  /** Use `workers` workers from the next step on. Reject with a RangeError or an error of
   *  kind 'input' (coordinator/exit.ts) for a count the run cannot take (→ 400 bad_request),
   *  with any other Error when it cannot now (→ 409 conflict).
   *  The route checks only that `workers` is a non-negative integer: the upper limit is the
   *  run's (coordinator/config.ts WORKER_COUNT), which the dashboard may not import. */
  scale(workers: number): Promise<{ workers: number }>;
  /** Write a checkpoint now. Errors map as for scale. */
  checkpoint(): Promise<{ path: string; step: number }>;
  /** Ask the run to stop. Not awaited by the route: closing this server waits for the
   *  request that asked, so the answer goes out first. A synchronous throw is reported. */
  stop(): Promise<void> | void;
}

const BODY_LIMIT_BYTES = 16 * 1024;

const ERROR_CODES: Record<number, string> = {
  400: 'bad_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 405: 'method_not_allowed',
  409: 'conflict', 413: 'payload_too_large', 415: 'unsupported_media_type', 503: 'unavailable',
};

/** The dashboard's parts: the run's live view, its metrics and recent failures; a captioning run's gallery. */
export interface DashboardParts {
  view: RunView;
  metrics?: MetricsSource;
  failures?: () => unknown[];
  gallery?: GalleryView;
}

export function buildServer(opts: { token: string; control: RunControl; logger?: boolean; dashboard?: DashboardParts }): FastifyInstance {
  checkControl(opts.control);
  const auth = bearerAuth(opts.token); // validates the token now, not at the first request
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: BODY_LIMIT_BYTES,
    // A client must send its whole request within this time (slow-loris guard);
    // event streams are long responses, not long requests, and are unaffected.
    requestTimeout: 10_000,
    // Control bodies are JSON: no coercion ("2" is not 2) and no silent removal of unknown
    // keys (a typo must fail, not half-work). Routes added later that take numeric query
    // parameters must parse them (query values are strings).
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, verbose: true } },
    schemaErrorFormatter: (errors, dataVar) => new Error(errors.map((e) => describeSchemaError(e, dataVar)).join('; ')),
  });
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (status >= 500) request.log.error(error);
    reply.code(status).send({ error: ERROR_CODES[status] ?? (status < 500 ? 'bad_request' : 'internal'), message: error.message });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: 'not_found', message: `no route for ${request.method} ${request.url}` });
  });
  app.register(healthRoutes);
  app.register(controlRoutes, { auth, control: opts.control });
  if (opts.dashboard) {
    app.register(pageRoutes, opts.dashboard);
    app.register(eventRoutes, { view: opts.dashboard.view });
    if (opts.dashboard.gallery) app.register(galleryRoutes, { gallery: opts.dashboard.gallery });
  }
  return app;
}

/** Listen on host:port (port 0: any free port); `url` names the address actually bound. */
export async function startServer(opts: {
  host: string;
  port: number;
  token: string;
  control: RunControl;
  dashboard?: DashboardParts;
}): Promise<{ url: string; app: FastifyInstance; close(): Promise<void> }> {
  if (typeof opts.host !== 'string' || opts.host === '') throw new TypeError(`startServer: host must be a non-empty string, got ${JSON.stringify(opts.host)}`);
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new RangeError(`startServer: port must be an integer from 0 to 65535, got ${opts.port}`);
  const app = buildServer({ token: opts.token, control: opts.control, dashboard: opts.dashboard });
  await app.listen({ host: opts.host, port: opts.port });
  const address = app.server.address() as AddressInfo;
  // A wildcard bind is reached through loopback by the local `gradpool scale`.
  const host = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
  return { url, app, close: () => app.close() };
}

const healthRoutes: FastifyPluginAsync = async (app) => {
  app.get('/healthz', async () => ({ ok: true }));
};

/** `auth` (from bearerAuth) runs as onRequest: strangers are refused before the body is read. */
const controlRoutes: FastifyPluginAsync<{ auth: BearerHook; control: RunControl }> = async (app, { auth, control }) => {
  app.get('/api/run', async () => control.runInfo());
  const scaleBody = {
    type: 'object',
    required: ['workers'],
    additionalProperties: false,
    properties: { workers: { type: 'integer', minimum: 0 } },
  } as const;
  app.post<{ Body: { workers: number } }>('/api/scale', { onRequest: auth, schema: { body: scaleBody } }, async (request) => {
    const { workers } = await act(() => control.scale(request.body.workers));
    return { workers };
  });
  app.post('/api/checkpoint', { onRequest: auth }, async () => {
    const { path, step } = await act(() => control.checkpoint());
    return { path, step };
  });
  app.post('/api/stop', { onRequest: auth }, async (request) => {
    let pending: Promise<void> | void;
    try {
      pending = control.stop();
    } catch (e) {
      throw withStatus(e);
    }
    Promise.resolve(pending).catch((e: unknown) => request.log.error({ err: e }, 'stopping the run failed'));
    return { stopping: true };
  });
};

/** Runs a control action, giving its errors an HTTP status (see RunControl). */
async function act<T>(action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (e) {
    throw withStatus(e);
  }
}

function withStatus(e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const badRequest = e instanceof RangeError || (e as { kind?: unknown }).kind === 'input';
  return Object.assign(new Error(e.message, { cause: e }), { statusCode: badRequest ? 400 : 409 });
}

function checkControl(control: RunControl): void {
  for (const name of ['runInfo', 'scale', 'checkpoint', 'stop'] as const) {
    if (typeof control?.[name] !== 'function') throw new TypeError(`buildServer: control.${name} must be a function`);
  }
}

type SchemaError = { keyword: string; instancePath?: string; params: Record<string, unknown>; message?: string; data?: unknown };

/** "body.workers must be >= 0; got -1": the field and the offending value. */
function describeSchemaError(e: SchemaError, dataVar: string): string {
  const where = dataVar + (e.instancePath ?? '').replaceAll('/', '.');
  if (e.keyword === 'required') return `${where} is missing required property "${String(e.params.missingProperty)}"`;
  if (e.keyword === 'additionalProperties') return `${where} has unknown property "${String(e.params.additionalProperty)}"`;
  const got = e.data === undefined ? 'nothing' : JSON.stringify(e.data).slice(0, 40);
  return `${where} ${e.message ?? 'is invalid'}; got ${got}`;
}
