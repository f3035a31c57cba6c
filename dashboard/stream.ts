// GET /api/events: the run's events as Server-Sent Events. One subscription to the
// run serves every client and each event is serialized once; a client that does not
// keep up (its socket buffer grows past a bound) is disconnected instead of growing
// memory, and the number of clients is capped.

import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsync } from 'fastify';
import type { RunView } from './view.js';

const MAX_SSE_CLIENTS = 1000;
/** Bytes a client may have queued before it is dropped (it reconnects and refetches). */
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;
const PING_MS = 15_000;

export const eventRoutes: FastifyPluginAsync<{ view: RunView }> = async (app, { view }) => {
  const clients = new Set<ServerResponse>();
  const broadcast = (frame: string) => {
    for (const res of clients) {
      if (res.writableLength > MAX_QUEUED_BYTES) {
        clients.delete(res);
        res.destroy();
      } else {
        res.write(frame);
      }
    }
  };
  // Events of one tick (a step, its validation, …) go out as one write per client.
  let pending = '';
  const flush = () => {
    const frames = pending;
    pending = '';
    if (frames && clients.size > 0) broadcast(frames);
  };
  const unsubscribe = view.subscribe((e) => {
    if (clients.size === 0) return;
    if (pending === '') setImmediate(flush);
    pending += `event: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`;
  });
  const ping = setInterval(() => broadcast(': ping\n\n'), PING_MS);
  ping.unref();

  // Open streams would keep app.close() waiting forever: end them first.
  app.addHook('preClose', async () => {
    clearInterval(ping);
    unsubscribe();
    for (const res of clients) res.end();
    clients.clear();
  });

  app.get('/api/events', (request, reply) => {
    if (clients.size >= MAX_SSE_CLIENTS) {
      reply.code(503).send({ error: 'unavailable', message: `too many event streams (${MAX_SSE_CLIENTS}); try again later` });
      return;
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 2000\nevent: run\ndata: ${JSON.stringify(view.info())}\n\n`);
    clients.add(res);
    request.raw.on('close', () => clients.delete(res));
  });
};
