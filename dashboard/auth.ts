// Bearer-token check for the control routes. The token is a per-run secret written to
// RUN_DIR/token (mode 0600): whoever can read that file may steer the run.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** A fresh per-run secret: 32 random bytes as 64 hex characters. */
export function newRunToken(): string {
  return randomBytes(32).toString('hex');
}

export type BearerHook = (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>;

// RFC 6750: the scheme is case-insensitive; the token is one run of non-space characters.
const BEARER = /^Bearer +(\S+) *$/i;

/**
 * A fastify hook (usable as onRequest or preHandler) that lets a request through only
 * with `Authorization: Bearer <token>`. Missing or malformed header: 401 unauthorized;
 * a well-formed header with another token: 403 forbidden.
 */
export function bearerAuth(token: string): BearerHook {
  if (typeof token !== 'string' || token === '' || /\s/.test(token)) {
    throw new TypeError('bearerAuth: token must be a non-empty string without whitespace');
  }
  // Hashing both sides gives equal-length buffers, so timingSafeEqual never throws and
  // the comparison time does not depend on where the tokens differ, nor on their lengths.
  const expected = sha256(token);
  return async (request, reply) => {
    const header = request.headers.authorization;
    if (header === undefined || header === '') {
      return refuse(reply, 401, 'unauthorized', 'missing Authorization header; send "Authorization: Bearer <token>" with the token from the run directory');
    }
    const match = BEARER.exec(header);
    if (match === null) {
      return refuse(reply, 401, 'unauthorized', 'Authorization header is not of the form "Bearer <token>"');
    }
    if (!timingSafeEqual(sha256(match[1]), expected)) {
      return refuse(reply, 403, 'forbidden', 'the bearer token does not match this run');
    }
    return undefined;
  };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function refuse(reply: FastifyReply, status: 401 | 403, error: string, message: string): FastifyReply {
  if (status === 401) reply.header('www-authenticate', 'Bearer');
  return reply.code(status).send({ error, message });
}
