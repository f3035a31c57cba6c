// The dashboard page and the JSON read API: GET / (the page, no build step),
// /static/* (its files), /vendor/uplot/* (uPlot from node_modules), /api/history,
// /api/samples, /api/failures and /metrics.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';
import type { RunView } from './view.js';

/** dashboard/public, whether this module runs from sources or from dist/ (the all-runs dashboard serves it too). */
export function publicDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const dir of [join(here, 'public'), join(here, '..', '..', 'dashboard', 'public')]) {
    if (existsSync(join(dir, 'index.html'))) return dir;
  }
  throw new Error(`dashboard/public/index.html not found near ${here}`);
}

export function uplotDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('uplot/package.json')), 'dist');
}

/** Longest a /metrics answer may be reused. */
const METRICS_MAX_AGE_MS = 1000;

export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

export const pageRoutes: FastifyPluginAsync<{ view: RunView; metrics?: MetricsSource; failures?: () => unknown[] }> = async (
  app,
  { view, metrics, failures },
) => {
  const root = publicDir();
  await app.register(fastifyStatic, { root, prefix: '/static/', index: false });
  await app.register(fastifyStatic, { root: uplotDir(), prefix: '/vendor/uplot/', decorateReply: false, index: false, allowedPath: (p) => /^\/uPlot\.(iife\.min\.js|min\.css)$/.test(p) });
  app.get('/', (_request, reply) => reply.type('text/html; charset=utf-8').sendFile('index.html', root));
  app.get('/api/history', async () => ({ steps: view.history(), validations: view.validations() }));
  app.get('/api/samples', async () => view.samples());
  if (failures) app.get('/api/failures', async () => failures());
  if (metrics) {
    // Rendering the registry costs ~1 ms of the main thread; a scraper polling faster
    // than once a second gets the same text again (values change once per step anyway).
    let cached: { text: string; at: number } | null = null;
    app.get('/metrics', async (_request, reply) => {
      reply.type(metrics.contentType);
      const now = Date.now();
      if (!cached || now - cached.at >= METRICS_MAX_AGE_MS) cached = { text: await metrics.text(), at: now };
      return cached.text;
    });
  }
};
