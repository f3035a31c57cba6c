// The control server's routes through app.inject(): auth, body validation, error mapping.

import { afterEach, describe, expect, it } from 'vitest';
import { bearerAuth, newRunToken } from '../../dashboard/auth.js';
import { buildServer, type RunControl } from '../../dashboard/server.js';

const TOKEN = 'a'.repeat(64);
const AUTH = { authorization: `Bearer ${TOKEN}` };

function fakeControl(overrides: Partial<RunControl> = {}): RunControl & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    runInfo: () => ({ step: 7, workers: 2, cell: 'lstm' }),
    scale: async (workers) => (calls.push(`scale ${workers}`), { workers }),
    checkpoint: async () => (calls.push('checkpoint'), { path: '/runs/x/ckpt-7.safetensors', step: 7 }),
    stop: () => void calls.push('stop'),
    ...overrides,
  };
}

let app: ReturnType<typeof buildServer> | undefined;
afterEach(async () => app?.close());

function server(control = fakeControl()) {
  app = buildServer({ token: TOKEN, control });
  return app;
}

describe('read-only routes need no token', () => {
  it('GET /healthz', async () => {
    const r = await server().inject({ method: 'GET', url: '/healthz' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ ok: true });
  });
  it('GET /api/run returns runInfo()', async () => {
    const r = await server().inject({ method: 'GET', url: '/api/run' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ step: 7, workers: 2, cell: 'lstm' });
  });
  it('unknown routes are 404 not_found', async () => {
    const r = await server().inject({ method: 'GET', url: '/nope' });
    expect(r.statusCode).toBe(404);
    expect(r.json()).toEqual({ error: 'not_found', message: 'no route for GET /nope' });
  });
});

describe('control routes require the bearer token', () => {
  for (const url of ['/api/scale', '/api/checkpoint', '/api/stop']) {
    it(`${url}: 401 without a header, 401 for another scheme, 403 for a wrong token`, async () => {
      const control = fakeControl();
      const a = server(control);
      const payload = { workers: 2 };
      const none = await a.inject({ method: 'POST', url, payload });
      expect(none.statusCode).toBe(401);
      expect(none.json()).toMatchObject({ error: 'unauthorized', message: expect.stringContaining('missing Authorization header') });
      expect(none.headers['www-authenticate']).toBe('Bearer');
      const basic = await a.inject({ method: 'POST', url, payload, headers: { authorization: `Basic ${TOKEN}` } });
      expect(basic.statusCode).toBe(401);
      expect(basic.json()).toMatchObject({ error: 'unauthorized', message: expect.stringContaining('Bearer <token>') });
      const wrong = await a.inject({ method: 'POST', url, payload, headers: { authorization: 'Bearer nope' } });
      expect(wrong.statusCode).toBe(403);
      expect(wrong.json()).toEqual({ error: 'forbidden', message: 'the bearer token does not match this run' });
      expect(control.calls).toEqual([]);
    });
  }
  it('refuses before validating the body: a stranger gets 401, not 400', async () => {
    const r = await server().inject({ method: 'POST', url: '/api/scale', payload: { workers: 0 } });
    expect(r.statusCode).toBe(401);
  });
  it('POST /api/scale calls control.scale', async () => {
    const control = fakeControl();
    const r = await server(control).inject({ method: 'POST', url: '/api/scale', payload: { workers: 3 }, headers: AUTH });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ workers: 3 });
    expect(control.calls).toEqual(['scale 3']);
  });
  it('POST /api/checkpoint returns path and step', async () => {
    const r = await server().inject({ method: 'POST', url: '/api/checkpoint', headers: { authorization: `bearer ${TOKEN}` } });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ path: '/runs/x/ckpt-7.safetensors', step: 7 });
  });
  it('POST /api/stop answers before the stop completes', async () => {
    let release = () => {};
    const control = fakeControl({ stop: () => new Promise<void>((resolve) => (release = resolve)) });
    const r = await server(control).inject({ method: 'POST', url: '/api/stop', headers: AUTH });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ stopping: true });
    release();
  });
});

describe('POST /api/scale body validation', () => {
  const cases: [string, unknown, string][] = [
    ['missing workers', {}, 'body is missing required property "workers"'],
    ['negative', { workers: -1 }, 'body.workers must be >= 0; got -1'],
    ['a fraction', { workers: 1.5 }, 'body.workers must be integer; got 1.5'],
    ['a string', { workers: '2' }, 'body.workers must be integer; got "2"'],
    ['an extra property', { workers: 2, wrokers: 3 }, 'body has unknown property "wrokers"'],
    ['not an object', [2], 'body must be object; got [2]'],
  ];
  for (const [name, payload, message] of cases) {
    it(`${name} → 400 bad_request naming the field`, async () => {
      const control = fakeControl();
      const r = await server(control).inject({ method: 'POST', url: '/api/scale', payload: payload as object, headers: AUTH });
      expect(r.statusCode).toBe(400);
      expect(r.json()).toEqual({ error: 'bad_request', message });
      expect(control.calls).toEqual([]);
    });
  }
  it('invalid JSON → 400 bad_request', async () => {
    const r = await server().inject({ method: 'POST', url: '/api/scale', payload: '{"workers":', headers: { ...AUTH, 'content-type': 'application/json' } });
    expect(r.statusCode).toBe(400);
    expect(r.json().error).toBe('bad_request');
  });
  it('a body over 16 KiB → 413 payload_too_large', async () => {
    const payload = JSON.stringify({ workers: 2, pad: 'x'.repeat(17 * 1024) });
    const r = await server().inject({ method: 'POST', url: '/api/scale', payload, headers: { ...AUTH, 'content-type': 'application/json' } });
    expect(r.statusCode).toBe(413);
    expect(r.json()).toMatchObject({ error: 'payload_too_large', message: expect.stringMatching(/too large/i) });
  });
});

describe('errors from the run surface with their message', () => {
  it('a RangeError from scale → 400', async () => {
    const control = fakeControl({ scale: async (n) => { throw new RangeError(`workers ${n} exceeds the 4 shards per step`); } });
    const r = await server(control).inject({ method: 'POST', url: '/api/scale', payload: { workers: 8 }, headers: AUTH });
    expect(r.statusCode).toBe(400);
    expect(r.json()).toEqual({ error: 'bad_request', message: 'workers 8 exceeds the 4 shards per step' });
  });
  it('the upper limit of a worker count is the run\'s: 5000 reaches scale, whose input error → 400', async () => {
    const control = fakeControl({ scale: async (n) => { throw Object.assign(new Error(`workers is ${n}; allowed: an integer from 0 to 1024`), { kind: 'input' }); } });
    const r = await server(control).inject({ method: 'POST', url: '/api/scale', payload: { workers: 5000 }, headers: AUTH });
    expect(r.statusCode).toBe(400);
    expect(r.json()).toEqual({ error: 'bad_request', message: 'workers is 5000; allowed: an integer from 0 to 1024' });
  });
  it('another Error from scale → 409 conflict', async () => {
    const control = fakeControl({ scale: async () => { throw new Error('the run is stopping'); } });
    const r = await server(control).inject({ method: 'POST', url: '/api/scale', payload: { workers: 2 }, headers: AUTH });
    expect(r.statusCode).toBe(409);
    expect(r.json()).toEqual({ error: 'conflict', message: 'the run is stopping' });
  });
  it('an Error from checkpoint or a synchronous one from stop → 409', async () => {
    const control = fakeControl({
      checkpoint: async () => { throw new Error('disk full'); },
      stop: () => { throw new Error('already stopping'); },
    });
    const a = server(control);
    const c = await a.inject({ method: 'POST', url: '/api/checkpoint', headers: AUTH });
    expect([c.statusCode, c.json()]).toEqual([409, { error: 'conflict', message: 'disk full' }]);
    const s = await a.inject({ method: 'POST', url: '/api/stop', headers: AUTH });
    expect([s.statusCode, s.json()]).toEqual([409, { error: 'conflict', message: 'already stopping' }]);
  });
});

describe('options are validated up front', () => {
  it('an empty token', () => {
    expect(() => buildServer({ token: '', control: fakeControl() })).toThrow('bearerAuth: token must be a non-empty string without whitespace');
    expect(() => bearerAuth('a b')).toThrow('without whitespace');
  });
  it('a control without scale', () => {
    const control = { ...fakeControl(), scale: undefined } as unknown as RunControl;
    expect(() => buildServer({ token: TOKEN, control })).toThrow('buildServer: control.scale must be a function');
  });
  it('newRunToken is 32 random bytes in hex', () => {
    const t = newRunToken();
    expect(t).toMatch(/^[0-9a-f]{64}$/);
    expect(newRunToken()).not.toBe(t);
  });
});
