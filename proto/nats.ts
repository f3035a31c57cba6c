// The NATS side of the wire: connection settings shared by `gradpool train --nats` and
// `gradpool worker`, the subjects a run uses, and error translation. Credentials never
// enter the run config (which is saved into checkpoints and shown on the dashboard).
//
// Subjects, under a prefix (default "gradpool"):
//   <p>.run.<run>.shard        shard tasks, requests to the queue group "<p>.workers"
//   <p>.worker.<id>.shard      shard tasks addressed to one worker (the coordinator's choice)
//   <p>.run.<run>.weights      weights chunks, published once per version
//   <p>.run.<run>.blob         requests for a missing chunk (weights, large tasks)
//   <p>.run.<run>.results.<c>  result chunks for coordinator connection c
//   <p>.workers.heartbeat      each worker, once a second
//   <p>.workers.hello          a coordinator starting: every worker answers with a heartbeat

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { connect, errors, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { InputError } from './flags.js';

export interface NatsSettings {
  /** Server URLs without credentials ("nats://host:port"). */
  servers: string[];
  /** For messages: the first server, credentials removed. */
  display: string;
  user?: string;
  pass?: string;
  token?: string;
  tls: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  requireAuth: boolean;
  prefix: string;
}

/** The command-line flags (for node:util parseArgs) both commands accept. */
export const NATS_FLAGS = {
  nats: { type: 'string' },
  'nats-user': { type: 'string' },
  'nats-pass-file': { type: 'string' },
  'nats-token-file': { type: 'string' },
  'nats-tls': { type: 'boolean' },
  'nats-tls-ca': { type: 'string' },
  'nats-tls-cert': { type: 'string' },
  'nats-tls-key': { type: 'string' },
  'nats-require-auth': { type: 'boolean' },
  'nats-prefix': { type: 'string' },
} as const;

export const NATS_HELP = `  --nats URL                             NATS server(s), comma-separated: nats://HOST:PORT or tls://HOST:PORT
                                         (user:pass@ or token@ in the URL are accepted and never stored)
  --nats-user NAME                       NATS user; the password comes from --nats-pass-file or $GRADPOOL_NATS_PASS
  --nats-pass-file FILE                  file holding the NATS password
  --nats-token-file FILE                 file holding a NATS token (or $GRADPOOL_NATS_TOKEN)
  --nats-tls                             require TLS (implied by tls:// and the --nats-tls-* files)
  --nats-tls-ca FILE                     CA certificate(s) to verify the server with
  --nats-tls-cert FILE                   client certificate (mutual TLS), with --nats-tls-key
  --nats-tls-key FILE                    client private key
  --nats-require-auth                    refuse to run unless the server requires authentication
  --nats-prefix NAME                     subject prefix (default: gradpool)`;

type Values = Record<string, string | boolean | undefined>;

function readSecret(path: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new InputError(`${flag} ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const secret = text.replace(/\r?\n$/, '');
  if (!secret) throw new InputError(`${flag} ${path}: the file is empty`);
  return secret;
}

function readable(path: string, flag: string): string {
  try {
    readFileSync(path);
  } catch (e) {
    throw new InputError(`${flag} ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return path;
}

/** NATS settings from parsed flags and the environment; null when --nats is absent (other --nats-* flags are then an error). */
export function natsSettingsFrom(values: Values, env: NodeJS.ProcessEnv = process.env): NatsSettings | null {
  const url = values.nats;
  const natsFlags = Object.keys(NATS_FLAGS).filter((k) => k !== 'nats' && values[k] !== undefined);
  if (url === undefined) {
    if (natsFlags.length) throw new InputError(`--${natsFlags[0]} needs --nats URL`);
    return null;
  }
  if (typeof url !== 'string' || url.trim() === '') throw new InputError('--nats is empty; allowed: nats://HOST:PORT or tls://HOST:PORT');
  let user: string | undefined;
  let pass: string | undefined;
  let token: string | undefined;
  // Where each credential came from, for the message when two kinds meet.
  let userFrom = '';
  let tokenFrom = '';
  let tls = values['nats-tls'] === true;
  const servers: string[] = [];
  for (const part of url.split(',').map((s) => s.trim()).filter(Boolean)) {
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(part)?.[1].toLowerCase();
    if (scheme !== undefined && scheme !== 'nats' && scheme !== 'tls') {
      throw new InputError(`--nats: scheme "${scheme}:" in ${redact(part)}; allowed: nats:// or tls://`);
    }
    const withScheme = scheme ? part : `nats://${part}`;
    // The URL parser calls "nats://:4222" invalid; say what is wrong with it.
    const authority = /^[a-z]+:\/\/(?:.*@)?([^/?#@]*)/i.exec(withScheme)?.[1] ?? '';
    if (authority === '' || authority.startsWith(':')) throw new InputError(`--nats: ${redact(part)} names no host`);
    let u: URL;
    try {
      u = new URL(withScheme);
    } catch {
      throw new InputError(`--nats: "${redact(part)}" is not a URL; allowed: nats://HOST:PORT or tls://HOST:PORT (characters such as / # ? @ in a password must be percent-encoded)`);
    }
    if (u.protocol !== 'nats:' && u.protocol !== 'tls:') throw new InputError(`--nats: scheme "${u.protocol}" in ${redact(part)}; allowed: nats:// or tls://`);
    if (!u.hostname) throw new InputError(`--nats: ${redact(part)} names no host`);
    if (u.pathname && u.pathname !== '/') throw new InputError(`--nats: ${redact(part)} has a path; allowed: nats://HOST:PORT`);
    // A query or fragment is never meant; it is what an unencoded # or ? in a password turns into.
    if (u.search || u.hash) throw new InputError(`--nats: ${redact(part)} has a query or fragment; allowed: nats://HOST:PORT (percent-encode # and ? in a password)`);
    if (u.protocol === 'tls:') tls = true;
    const decoded = (text: string) => {
      try {
        return decodeURIComponent(text);
      } catch {
        throw new InputError(`--nats: ${redact(part)} has a malformed %-escape in its credentials`);
      }
    };
    if (u.username && u.password) {
      user = decoded(u.username);
      pass = decoded(u.password);
      userFrom = 'the --nats URL';
    } else if (u.username) {
      token = decoded(u.username);
      tokenFrom = 'the --nats URL';
    } else if (u.password) {
      // ":secret@host" would otherwise connect without the secret, silently.
      throw new InputError(`--nats: ${redact(part)} has a password but no user; allowed: nats://USER:PASS@HOST:PORT or nats://TOKEN@HOST:PORT`);
    }
    servers.push(`${u.hostname.includes(':') && !u.hostname.startsWith('[') ? `[${u.hostname}]` : u.hostname}:${u.port || '4222'}`);
  }
  if (servers.length === 0) throw new InputError('--nats names no server');
  if (typeof values['nats-user'] === 'string') {
    user = values['nats-user'];
    userFrom = '--nats-user';
    if (!user) throw new InputError('--nats-user is empty');
    if (typeof values['nats-pass-file'] === 'string') pass = readSecret(values['nats-pass-file'], '--nats-pass-file');
    else if (env.GRADPOOL_NATS_PASS) pass = env.GRADPOOL_NATS_PASS;
    else if (pass === undefined) throw new InputError('--nats-user needs a password: --nats-pass-file FILE or $GRADPOOL_NATS_PASS');
  } else if (typeof values['nats-pass-file'] === 'string') {
    throw new InputError('--nats-pass-file needs --nats-user NAME');
  }
  if (typeof values['nats-token-file'] === 'string') {
    token = readSecret(values['nats-token-file'], '--nats-token-file');
    tokenFrom = '--nats-token-file';
  } else if (token === undefined && env.GRADPOOL_NATS_TOKEN) {
    token = env.GRADPOOL_NATS_TOKEN;
    tokenFrom = '$GRADPOOL_NATS_TOKEN';
  }
  if (token !== undefined && user !== undefined) {
    throw new InputError(`NATS: a user (from ${userFrom}) and a token (from ${tokenFrom}) were both given; give a user and password or a token, not both`);
  }
  const tlsCa = typeof values['nats-tls-ca'] === 'string' ? readable(values['nats-tls-ca'], '--nats-tls-ca') : undefined;
  const tlsCert = typeof values['nats-tls-cert'] === 'string' ? readable(values['nats-tls-cert'], '--nats-tls-cert') : undefined;
  const tlsKey = typeof values['nats-tls-key'] === 'string' ? readable(values['nats-tls-key'], '--nats-tls-key') : undefined;
  if (tlsCert && !tlsKey) throw new InputError('--nats-tls-cert needs --nats-tls-key FILE (the client certificate\'s private key)');
  if (tlsKey && !tlsCert) throw new InputError('--nats-tls-key needs --nats-tls-cert FILE (the client certificate)');
  if (tlsCa || tlsCert) tls = true;
  const prefix = typeof values['nats-prefix'] === 'string' ? values['nats-prefix'] : 'gradpool';
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix)) {
    throw new InputError(`--nats-prefix is ${JSON.stringify(prefix)}; allowed: subject tokens of letters, digits, _ and -, separated by dots`);
  }
  return {
    servers,
    display: `${tls ? 'tls' : 'nats'}://${servers[0]}${servers.length > 1 ? ` (+${servers.length - 1})` : ''}`,
    user, pass, token, tls, tlsCa, tlsCert, tlsKey,
    requireAuth: values['nats-require-auth'] === true,
    prefix,
  };
}

/**
 * A URL (or a comma-separated list of them) with its credentials removed, for messages.
 * Everything up to the last "@" of each URL goes, with or without a scheme: a password
 * holding an unencoded "/" or "@" must not leak either.
 */
export function redact(url: string): string {
  return url
    .split(',')
    .map((part) => part.replace(/^(\s*[a-z][a-z0-9+.-]*:\/\/)?.*@/i, (_, scheme: string | undefined) => `${scheme ?? ''}***@`))
    .join(',');
}

function isLoopback(server: string): boolean {
  const host = server.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** Warnings about a connection that works but exposes the run (said once at start). */
export function natsWarnings(s: NatsSettings): string[] {
  const remote = s.servers.filter((x) => !isLoopback(x));
  if (remote.length === 0 || s.tls) return [];
  return [`NATS server ${remote[0]} is not on this machine and the connection is not TLS: weights, gradients${s.user || s.token ? ' and credentials' : ''} travel in clear (use tls:// or --nats-tls)`];
}

/** NATS could not be reached or refused us: a clear message, exit code 2. */
export class NatsError extends InputError {
  override name = 'NatsError';
}

const UNTRUSTED_CERT = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE',
]);

/** Why connect() failed, in words that say what to change. */
function connectFailure(e: unknown, s: NatsSettings): string {
  const err = e as Error & { code?: string; cause?: { code?: string } };
  const code = err?.code ?? err?.cause?.code;
  if (err?.name === 'AuthorizationError') {
    return s.user !== undefined || s.token !== undefined
      ? 'the server refused our credentials (Authorization Violation)'
      : 'the server requires authentication and we gave no credentials (Authorization Violation): use --nats-user with --nats-pass-file, or --nats-token-file';
  }
  if (code && UNTRUSTED_CERT.has(code)) {
    return `${err.message}: the server's TLS certificate is not signed by a CA we trust${s.tlsCa ? ` (--nats-tls-ca ${s.tlsCa})` : '; pass its CA with --nats-tls-ca FILE'}`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `${err.message}: the server's TLS certificate does not name the host we dialled`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `${err.message}: the server's TLS certificate is outside its validity period`;
  // A server that verifies client certificates drops one without, after a TLS 1.3 handshake
  // the client took for done: the client only sees its connect time out.
  if (err?.name === 'TimeoutError' && s.tls && !s.tlsCert) {
    return `${err.message} (if the server verifies client certificates, pass --nats-tls-cert FILE and --nats-tls-key FILE)`;
  }
  return err?.message ?? String(e);
}

export async function connectNats(s: NatsSettings, name: string): Promise<NatsConnection> {
  const opts: NodeConnectionOptions = {
    servers: s.servers,
    name,
    user: s.user,
    pass: s.pass,
    token: s.token,
    // Keep trying for ever once connected: a restarted server costs the steps in flight, not the run.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 5_000,
    maxPingOut: 3,
    timeout: 5_000,
  };
  if (s.tls) opts.tls = { caFile: s.tlsCa, certFile: s.tlsCert, keyFile: s.tlsKey };
  let nc: NatsConnection;
  try {
    nc = await connect(opts);
  } catch (e) {
    throw new NatsError(`cannot connect to NATS at ${s.display}: ${connectFailure(e, s)}`);
  }
  const info = nc.info;
  if (s.requireAuth && !(info?.auth_required || info?.tls_verify)) {
    await nc.close();
    throw new NatsError(
      `NATS at ${s.display} does not require authentication (its INFO says auth_required=false); refusing to run because --nats-require-auth is set`,
    );
  }
  return nc;
}

/** Data bytes that fit in one message of this connection's server. */
export function maxPayloadOf(nc: NatsConnection): number {
  return nc.info?.max_payload ?? 1024 * 1024;
}

export function subjects(prefix: string, runId: string) {
  return {
    shard: `${prefix}.run.${runId}.shard`,
    weights: `${prefix}.run.${runId}.weights`,
    blob: `${prefix}.run.${runId}.blob`,
    results: (conn: string) => `${prefix}.run.${runId}.results.${conn}`,
  };
}

export const workerSubject = (prefix: string, id: string) => `${prefix}.worker.${id}.shard`;
export const heartbeatSubject = (prefix: string) => `${prefix}.workers.heartbeat`;
/** A coordinator starting asks every worker for a heartbeat at once (instead of within the second). */
export const helloSubject = (prefix: string) => `${prefix}.workers.hello`;
export const anyRunShardSubject = (prefix: string) => `${prefix}.run.*.shard`;
export const queueGroup = (prefix: string) => `${prefix}.workers`;

/** A subject-safe id for this process. */
export function processId(kind: string): string {
  const host = hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 40) || 'host';
  return `${kind}-${host}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * What went wrong with a request, by the error's class (@nats-io/nats-core errors): "no
 * responders" and timeouts re-issue a shard without counting against its attempts.
 * A no-responders status arrives as a RequestError whose cause is a NoRespondersError.
 */
export function requestFailure(e: unknown): 'no-responders' | 'timeout' | 'disconnected' | 'other' {
  if (e instanceof errors.NoRespondersError || (e instanceof errors.RequestError && e.isNoResponders())) return 'no-responders';
  if (e instanceof errors.TimeoutError) return 'timeout';
  if (e instanceof errors.ClosedConnectionError || e instanceof errors.DrainingConnectionError || e instanceof errors.ConnectionError) return 'disconnected';
  return 'other';
}

/**
 * Flush what is pending and close, but never wait for ever: with the server gone the
 * client keeps reconnecting and a plain drain() would not return.
 */
export async function closeNats(nc: NatsConnection, ms = 3_000): Promise<void> {
  if (nc.isClosed()) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((r) => (timer = setTimeout(r, ms)));
  const drained = nc.isDraining() ? nc.closed().then(() => undefined) : nc.drain().catch(() => undefined);
  await Promise.race([drained, timeout]);
  clearTimeout(timer);
  if (!nc.isClosed()) await nc.close().catch(() => undefined);
}
