// Security of the NATS transport (issue 7, item 4): every bad --nats* input and its
// message; user/password, token and TLS (server-only and mutual) against a real
// nats-server; --nats-require-auth; and, through the CLI, that credentials never reach
// the run directory, the output or the dashboard, and that no process listens for NATS.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectNats, NATS_FLAGS, NatsError, type NatsSettings, natsSettingsFrom, natsWarnings, redact } from '../../proto/nats.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js';

const bin = join(import.meta.dirname, '..', '..', 'bin', 'gradpool.js');
const dir = mkdtempSync(join(tmpdir(), 'gradpool-nats-auth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Secrets with characters a URL must escape: the URL form is percent-encoded.
const USER = 'alice';
const PASSWORD = 'Corr3ct-h0rse:b@ttery/staple';
const TOKEN = 'tok-6f1c9a0e44';

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
const passFile = file('pass', `${PASSWORD}\n`);
const wrongPassFile = file('wrong-pass', 'not-the-password\n');
const tokenFile = file('token', `${TOKEN}\r\n`);
const wrongTokenFile = file('wrong-token', 'tok-wrong\n');
const emptyFile = file('empty', '');
const newlineFile = file('newline', '\n');
const missing = join(dir, 'no-such-file');

/** Settings as the CLI would build them, without looking at this process's environment. */
const settings = (values: Record<string, string | boolean>, env: NodeJS.ProcessEnv = {}) => natsSettingsFrom(values, env)!;

function parseError(values: Record<string, string | boolean>, env: NodeJS.ProcessEnv = {}): string {
  try {
    natsSettingsFrom(values, env);
  } catch (e) {
    expect((e as { kind?: string }).kind, 'an input error: exit code 2').toBe('input');
    return (e as Error).message;
  }
  throw new Error(`natsSettingsFrom accepted ${JSON.stringify(values)}`);
}

async function connectError(s: NatsSettings): Promise<NatsError> {
  try {
    const nc = await connectNats(s, 'nats-auth test');
    await nc.close();
  } catch (e) {
    expect(e).toBeInstanceOf(NatsError);
    return e as NatsError;
  }
  throw new Error(`connectNats to ${s.display} succeeded`);
}

/** Connects, proves the connection works with a round trip, closes; returns the server's INFO. */
async function connectOk(s: NatsSettings) {
  const nc = await connectNats(s, 'nats-auth test');
  try {
    await nc.flush();
    return nc.info!;
  } finally {
    await nc.close();
  }
}

describe('natsSettingsFrom: bad input', () => {
  const url = 'nats://127.0.0.1:4222';
  it.each([
    ['a scheme other than nats/tls', { nats: 'http://127.0.0.1:4222' }, /^--nats: scheme "http:" in http:\/\/127\.0\.0\.1:4222; allowed: nats:\/\/ or tls:\/\/$/],
    ['no host', { nats: 'nats://' }, /^--nats: nats:\/\/ names no host$/],
    ['a port but no host', { nats: 'nats://:4222' }, /^--nats: nats:\/\/:4222 names no host$/],
    ['credentials but no host', { nats: 'tls://alice:pw@' }, /^--nats: tls:\/\/\*\*\*@ names no host$/],
    ['a path', { nats: 'nats://127.0.0.1:4222/subject' }, /^--nats: nats:\/\/127\.0\.0\.1:4222\/subject has a path; allowed: nats:\/\/HOST:PORT$/],
    ['a query', { nats: 'nats://127.0.0.1:4222?x=1' }, /has a query or fragment/],
    ['a port out of range', { nats: 'nats://127.0.0.1:99999' }, /^--nats: "nats:\/\/127\.0\.0\.1:99999" is not a URL/],
    ['an empty --nats', { nats: '' }, /^--nats is empty; allowed: nats:\/\/HOST:PORT or tls:\/\/HOST:PORT$/],
    ['a blank --nats', { nats: '   ' }, /^--nats is empty/],
    ['a list of nothing', { nats: ' , ' }, /^--nats names no server$/],
    ['a password without a user in the URL', { nats: 'nats://:secret@127.0.0.1' }, /has a password but no user/],
    ['a malformed %-escape', { nats: 'nats://al%zzice:pw@127.0.0.1' }, /malformed %-escape/],
    ['--nats-user without a password', { nats: url, 'nats-user': USER }, /^--nats-user needs a password: --nats-pass-file FILE or \$GRADPOOL_NATS_PASS$/],
    ['an empty --nats-user', { nats: url, 'nats-user': '', 'nats-pass-file': passFile }, /^--nats-user is empty$/],
    ['--nats-pass-file without --nats-user', { nats: url, 'nats-pass-file': passFile }, /^--nats-pass-file needs --nats-user NAME$/],
    ['a missing password file', { nats: url, 'nats-user': USER, 'nats-pass-file': missing }, new RegExp(`^--nats-pass-file ${missing}: cannot read it \\(ENOENT\\)$`)],
    ['a directory as password file', { nats: url, 'nats-user': USER, 'nats-pass-file': dir }, /^--nats-pass-file .*: cannot read it \(EISDIR\)$/],
    ['an empty password file', { nats: url, 'nats-user': USER, 'nats-pass-file': emptyFile }, new RegExp(`^--nats-pass-file ${emptyFile}: the file is empty$`)],
    ['a password file holding only a newline', { nats: url, 'nats-user': USER, 'nats-pass-file': newlineFile }, /the file is empty$/],
    ['a missing token file', { nats: url, 'nats-token-file': missing }, /^--nats-token-file .*no-such-file: cannot read it \(ENOENT\)$/],
    ['an empty token file', { nats: url, 'nats-token-file': emptyFile }, /^--nats-token-file .*: the file is empty$/],
    ['a user and a token file', { nats: url, 'nats-user': USER, 'nats-pass-file': passFile, 'nats-token-file': tokenFile }, /^NATS: a user \(from --nats-user\) and a token \(from --nats-token-file\) were both given/],
    ['a token in the URL and --nats-user', { nats: 'nats://tok@127.0.0.1', 'nats-user': USER, 'nats-pass-file': passFile }, /a user \(from --nats-user\) and a token \(from the --nats URL\)/],
    ['--nats-tls-cert without --nats-tls-key', { nats: url, 'nats-tls-cert': passFile }, /^--nats-tls-cert needs --nats-tls-key FILE/],
    ['--nats-tls-key without --nats-tls-cert', { nats: url, 'nats-tls-key': passFile }, /^--nats-tls-key needs --nats-tls-cert FILE/],
    ['a missing CA file', { nats: url, 'nats-tls-ca': missing }, /^--nats-tls-ca .*: cannot read it \(ENOENT\)$/],
    ['a prefix with an empty token', { nats: url, 'nats-prefix': 'a..b' }, /^--nats-prefix is "a\.\.b"; allowed: subject tokens/],
    ['a prefix with a wildcard', { nats: url, 'nats-prefix': 'runs.*' }, /^--nats-prefix is "runs\.\*"/],
    ['a prefix with a space', { nats: url, 'nats-prefix': 'my runs' }, /^--nats-prefix is "my runs"/],
    ['an empty prefix', { nats: url, 'nats-prefix': '' }, /^--nats-prefix is ""/],
  ])('refuses %s', (_, values, message) => {
    expect(parseError(values)).toMatch(message);
  });

  it('refuses a user from the URL with a token from $GRADPOOL_NATS_TOKEN, naming both sources', () => {
    expect(parseError({ nats: 'nats://alice:pw@127.0.0.1' }, { GRADPOOL_NATS_TOKEN: TOKEN })).toMatch(
      /a user \(from the --nats URL\) and a token \(from \$GRADPOOL_NATS_TOKEN\)/,
    );
  });

  it.each(Object.keys(NATS_FLAGS).filter((k) => k !== 'nats'))('refuses --%s without --nats', (flag) => {
    const value = NATS_FLAGS[flag as keyof typeof NATS_FLAGS].type === 'boolean' ? true : passFile;
    expect(parseError({ [flag]: value })).toBe(`--${flag} needs --nats URL`);
  });

  it.each([
    ['after a scheme, with a path', `nats://${USER}:hunter2@127.0.0.1:4222/x`, 'hunter2'],
    ['without a scheme, with a path', `${USER}:hunter2@127.0.0.1:4222/x`, 'hunter2'],
    ['with an unencoded / in the password', `nats://${USER}:hun/ter2@127.0.0.1:4222`, 'ter2'],
    ['with an unencoded @ in the password, and a path', `nats://${USER}:p@ss@127.0.0.1:4222/x`, 'ss@'],
    ['with an unencoded # in the password', `nats://${USER}:hun#ter2@127.0.0.1:4222`, 'ter2'],
    ['with a bad scheme', `http://${USER}:hunter2@127.0.0.1:4222`, 'hunter2'],
    ['as a token, without a host', 'nats://s3cret-token@', 's3cret-token'],
  ])('never repeats credentials in a message: %s', (_, nats, secret) => {
    const message = parseError({ nats });
    expect(message).toContain('***@');
    expect(message).not.toContain(secret);
    expect(message).not.toContain(USER);
  });

  it('redact removes the credentials of each URL in a list', () => {
    expect(redact('nats://alice:pw@h1:4222,tls://tok@h2, h3:4222')).toBe('nats://***@h1:4222,tls://***@h2, h3:4222');
    expect(redact('alice:p@ss/w@h1')).toBe('***@h1');
  });
});

describe('natsSettingsFrom: good input', () => {
  it('is null without --nats', () => {
    expect(natsSettingsFrom({ workers: '2' }, {})).toBeNull();
  });

  it('takes user and password from the URL, percent-decoded, and keeps them out of display and servers', () => {
    const s = settings({ nats: `nats://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:4333` });
    expect(s).toMatchObject({ user: USER, pass: PASSWORD, token: undefined, tls: false, servers: ['127.0.0.1:4333'], display: 'nats://127.0.0.1:4333', prefix: 'gradpool', requireAuth: false });
    expect(`${s.display} ${s.servers}`).not.toMatch(/alice|Corr3ct|staple|%/);
  });

  it('takes a token from the URL; tls:// implies TLS; the default port is 4222', () => {
    const s = settings({ nats: `tls://${TOKEN}@localhost` });
    expect(s).toMatchObject({ token: TOKEN, user: undefined, tls: true, servers: ['localhost:4222'], display: 'tls://localhost:4222' });
    expect(s.display).not.toContain(TOKEN);
    expect(settings({ nats: 'localhost' }).tls).toBe(false);
  });

  it('--nats-tls and --nats-tls-ca imply TLS; a client certificate goes with its key', () => {
    expect(settings({ nats: 'nats://127.0.0.1', 'nats-tls': true })).toMatchObject({ tls: true, display: 'tls://127.0.0.1:4222' });
    expect(settings({ nats: 'nats://127.0.0.1', 'nats-tls-ca': passFile })).toMatchObject({ tls: true, tlsCa: passFile });
    expect(settings({ nats: 'nats://127.0.0.1', 'nats-tls-cert': passFile, 'nats-tls-key': tokenFile })).toMatchObject({ tls: true, tlsCert: passFile, tlsKey: tokenFile });
  });

  it('reads several servers, with or without a scheme, IPv6 in brackets', () => {
    const s = settings({ nats: '127.0.0.1:4222, nats://[::1]:4223' });
    expect(s.servers).toEqual(['127.0.0.1:4222', '[::1]:4223']);
    expect(s.display).toBe('nats://127.0.0.1:4222 (+1)');
  });

  it('reads the password from --nats-pass-file (one trailing newline dropped) before $GRADPOOL_NATS_PASS, and from the env var alone', () => {
    expect(settings({ nats: 'nats://h', 'nats-user': USER, 'nats-pass-file': passFile }, { GRADPOOL_NATS_PASS: 'from-env' }).pass).toBe(PASSWORD);
    expect(settings({ nats: 'nats://h', 'nats-user': USER }, { GRADPOOL_NATS_PASS: 'from-env' })).toMatchObject({ user: USER, pass: 'from-env' });
  });

  it('reads the token from --nats-token-file (CRLF dropped) or $GRADPOOL_NATS_TOKEN', () => {
    expect(settings({ nats: 'nats://h', 'nats-token-file': tokenFile }).token).toBe(TOKEN);
    expect(settings({ nats: 'nats://h' }, { GRADPOOL_NATS_TOKEN: 'env-token' }).token).toBe('env-token');
    expect(settings({ nats: 'nats://h' }, {}).token).toBeUndefined();
  });

  it('warns when credentials or tensors would cross the network in clear, and only then', () => {
    const [clear] = natsWarnings(settings({ nats: `nats://${USER}:pw@10.1.2.3:4222` }));
    expect(clear).toMatch(/^NATS server 10\.1\.2\.3:4222 is not on this machine and the connection is not TLS: weights, gradients and credentials travel in clear/);
    expect(clear).not.toContain('pw');
    expect(natsWarnings(settings({ nats: 'nats://10.1.2.3' }))[0]).toMatch(/weights, gradients travel in clear/);
    expect(natsWarnings(settings({ nats: `tls://${USER}:pw@10.1.2.3` }))).toEqual([]);
    expect(natsWarnings(settings({ nats: `nats://${USER}:pw@127.0.0.1,localhost,[::1]` }))).toEqual([]);
  });

  it('takes --nats-require-auth and a dotted --nats-prefix', () => {
    expect(settings({ nats: 'nats://h', 'nats-require-auth': true, 'nats-prefix': 'team-a.gp_1' })).toMatchObject({ requireAuth: true, prefix: 'team-a.gp_1' });
  });
});

describe('connectNats against nats-server with user/password or token', () => {
  let userServer: NatsServer;
  let tokenServer: NatsServer;
  let openServer: NatsServer;
  beforeAll(async () => {
    [userServer, tokenServer, openServer] = await Promise.all([
      startNatsServer(`authorization { user: ${USER}, password: ${JSON.stringify(PASSWORD)} }`),
      startNatsServer(`authorization { token: ${JSON.stringify(TOKEN)} }`),
      startNatsServer(),
    ]);
  });
  afterAll(async () => {
    await Promise.all([userServer?.stop(), tokenServer?.stop(), openServer?.stop()]);
  });

  it('connects with the right password from a file, from $GRADPOOL_NATS_PASS and from the URL', async () => {
    for (const s of [
      settings({ nats: userServer.url, 'nats-user': USER, 'nats-pass-file': passFile }),
      settings({ nats: userServer.url, 'nats-user': USER }, { GRADPOOL_NATS_PASS: PASSWORD }),
      settings({ nats: `nats://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${userServer.port}` }),
    ]) {
      expect((await connectOk(s)).auth_required).toBe(true);
    }
  });

  it('a wrong password is a NatsError naming the server, without the password', async () => {
    for (const s of [
      settings({ nats: userServer.url, 'nats-user': USER, 'nats-pass-file': wrongPassFile }),
      settings({ nats: userServer.url, 'nats-user': 'mallory' }, { GRADPOOL_NATS_PASS: PASSWORD }),
      settings({ nats: `nats://${USER}:not-the-password@127.0.0.1:${userServer.port}` }),
    ]) {
      const e = await connectError(s);
      expect(e.message).toBe(`cannot connect to NATS at nats://127.0.0.1:${userServer.port}: the server refused our credentials (Authorization Violation)`);
    }
  });

  it('no credentials at all says so and what to pass', async () => {
    const e = await connectError(settings({ nats: userServer.url }));
    expect(e.message).toMatch(new RegExp(`^cannot connect to NATS at nats://127\\.0\\.0\\.1:${userServer.port}: the server requires authentication and we gave no credentials .*--nats-user.*--nats-token-file`));
  });

  it('connects with the right token from a file, from $GRADPOOL_NATS_TOKEN and from the URL; refuses a wrong one', async () => {
    for (const s of [
      settings({ nats: tokenServer.url, 'nats-token-file': tokenFile }),
      settings({ nats: tokenServer.url }, { GRADPOOL_NATS_TOKEN: TOKEN }),
      settings({ nats: `nats://${TOKEN}@127.0.0.1:${tokenServer.port}` }),
    ]) {
      expect((await connectOk(s)).auth_required).toBe(true);
    }
    for (const s of [settings({ nats: tokenServer.url, 'nats-token-file': wrongTokenFile }), settings({ nats: `nats://tok-wrong@127.0.0.1:${tokenServer.port}` })]) {
      const e = await connectError(s);
      expect(e.message).toBe(`cannot connect to NATS at nats://127.0.0.1:${tokenServer.port}: the server refused our credentials (Authorization Violation)`);
    }
  });

  it('--nats-require-auth refuses a server without authentication, even when we bring credentials', async () => {
    for (const s of [
      settings({ nats: openServer.url, 'nats-require-auth': true }),
      settings({ nats: openServer.url, 'nats-require-auth': true, 'nats-user': USER, 'nats-pass-file': passFile }),
    ]) {
      const e = await connectError(s);
      expect(e.message).toMatch(new RegExp(`^NATS at nats://127\\.0\\.0\\.1:${openServer.port} does not require authentication.*refusing to run because --nats-require-auth is set$`));
    }
    // Without the flag the same server is accepted: the refusal is the flag's doing.
    expect((await connectOk(settings({ nats: openServer.url }))).auth_required).toBeFalsy();
  });

  it('--nats-require-auth accepts servers with password or token authentication', async () => {
    await connectOk(settings({ nats: userServer.url, 'nats-user': USER, 'nats-pass-file': passFile, 'nats-require-auth': true }));
    await connectOk(settings({ nats: tokenServer.url, 'nats-token-file': tokenFile, 'nats-require-auth': true }));
  });

  it('--nats-tls against a server without TLS fails instead of going on in clear', async () => {
    const e = await connectError(settings({ nats: openServer.url, 'nats-tls': true }));
    expect(e.message).toBe(`cannot connect to NATS at tls://127.0.0.1:${openServer.port}: server does not support 'tls'`);
  });
});

/** A throwaway CA, a server certificate for 127.0.0.1 and localhost, and a client certificate. */
function makeCertificates(into: string) {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: into, stdio: ['ignore', 'ignore', 'pipe'] });
  const key = (name: string) => run('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name);
  key('ca.key');
  run('req', '-x509', '-new', '-key', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=gradpool test CA');
  const sign = (name: string, subject: string, ext: string) => {
    key(`${name}.key`);
    run('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    writeFileSync(join(into, `${name}.ext`), ext);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
  };
  sign('server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  sign('client', '/CN=gradpool worker', 'extendedKeyUsage=clientAuth\n');
  // A second CA that signed nothing here: trusting it must not be enough.
  key('other.key');
  run('req', '-x509', '-new', '-key', 'other.key', '-out', 'other.pem', '-days', '2', '-subj', '/CN=some other CA');
  const p = (name: string) => join(into, name);
  return { ca: p('ca.pem'), otherCa: p('other.pem'), serverCert: p('server.pem'), serverKey: p('server.key'), clientCert: p('client.pem'), clientKey: p('client.key') };
}

describe('connectNats over TLS', () => {
  let certs: ReturnType<typeof makeCertificates>;
  let tlsServer: NatsServer;
  let mtlsServer: NatsServer;
  beforeAll(async () => {
    const certDir = join(dir, 'certs');
    mkdirSync(certDir);
    certs = makeCertificates(certDir);
    const tls = (extra: string) => `tls { cert_file: ${JSON.stringify(certs.serverCert)}, key_file: ${JSON.stringify(certs.serverKey)}${extra} }`;
    [tlsServer, mtlsServer] = await Promise.all([
      startNatsServer(tls('')),
      startNatsServer(tls(`, ca_file: ${JSON.stringify(certs.ca)}, verify: true`)),
    ]);
  });
  afterAll(async () => {
    await Promise.all([tlsServer?.stop(), mtlsServer?.stop()]);
  });

  it('connects with --nats-tls-ca, by IP and by name, with tls:// or nats:// plus the CA', async () => {
    for (const nats of [`tls://127.0.0.1:${tlsServer.port}`, `tls://localhost:${tlsServer.port}`, tlsServer.url]) {
      const info = await connectOk(settings({ nats, 'nats-tls-ca': certs.ca }));
      expect(info.tls_required).toBe(true);
    }
  });

  it('without the CA (or with another CA) fails with a message that says to pass --nats-tls-ca', async () => {
    for (const values of [{ nats: `tls://127.0.0.1:${tlsServer.port}` }, { nats: tlsServer.url }]) {
      const e = await connectError(settings(values));
      expect(e.message).toMatch(new RegExp(`^cannot connect to NATS at (tls|nats)://127\\.0\\.0\\.1:${tlsServer.port}: .*not signed by a CA we trust; pass its CA with --nats-tls-ca FILE$`));
    }
    const e = await connectError(settings({ nats: tlsServer.url, 'nats-tls-ca': certs.otherCa }));
    expect(e.message).toMatch(/not signed by a CA we trust \(--nats-tls-ca .*other\.pem\)$/);
  });

  it('TLS without client certificates is not authentication for --nats-require-auth', async () => {
    const e = await connectError(settings({ nats: tlsServer.url, 'nats-tls-ca': certs.ca, 'nats-require-auth': true }));
    expect(e.message).toMatch(/does not require authentication.*--nats-require-auth/);
  });

  it('mutual TLS: connects with a client certificate, and counts as authenticated for --nats-require-auth', async () => {
    const info = await connectOk(
      settings({ nats: mtlsServer.url, 'nats-tls-ca': certs.ca, 'nats-tls-cert': certs.clientCert, 'nats-tls-key': certs.clientKey, 'nats-require-auth': true }),
    );
    expect(info.tls_verify).toBe(true);
  });

  it('mutual TLS without a client certificate fails, and the message says what to pass', async () => {
    const e = await connectError(settings({ nats: mtlsServer.url, 'nats-tls-ca': certs.ca }));
    expect(e.message).toMatch(new RegExp(`^cannot connect to NATS at tls://127\\.0\\.0\\.1:${mtlsServer.port}: .*--nats-tls-cert FILE and --nats-tls-key FILE`));
  }, 20_000);
});

// ---------------------------------------------------------------------------------------
// Through the CLI: the compiled binary, as users run it.

const children = new Set<ChildProcess>();
afterEach(async () => {
  await Promise.all(
    [...children].map(async (child) => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await gone;
      }
    }),
  );
  children.clear();
});

interface Child {
  proc: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

function gradpool(args: string[], env: NodeJS.ProcessEnv = {}): Child {
  // A clean environment: the test runner's own GRADPOOL_NATS_* must not leak in.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GRADPOOL_NATS_')));
  const proc = spawn(process.execPath, [bin, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  return { proc, out: () => out, err: () => err, exited };
}

async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const data = file('text.txt', 'the quick brown fox jumps over the lazy dog. '.repeat(100));
const tiny = ['--data', data, '--hidden', '16', '--embed', '8', '--batch', '4', '--seq-len', '8', '--steps', '2', '--eval-every', '0', '--sample-every', '0', '--port', '0'];

/** The TCP sockets a process holds, from /proc: its fds' socket inodes matched against the net tables. */
interface TcpSocket {
  address: string;
  port: number;
  remotePort: number;
  listening: boolean;
}
function tcpSockets(pid: number): TcpSocket[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // the fd closed between readdir and readlink
    }
  }
  const sockets: TcpSocket[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue; // no IPv6 in this kernel
    }
    for (const line of text.trim().split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (!inodes.has(f[9])) continue;
      const [hex, port] = f[1].split(':');
      // Little-endian 32-bit words: 0100007F is 127.0.0.1; ::1 ends in 01000000.
      const words = hex.match(/.{8}/g)!.map((w) => w.match(/../g)!.reverse().join(''));
      const address = table === 'tcp' ? words[0].match(/../g)!.map((b) => parseInt(b, 16)).join('.') : words.join('').toLowerCase();
      sockets.push({ address, port: parseInt(port, 16), remotePort: parseInt(f[2].split(':')[1], 16), listening: f[3] === '0A' });
    }
  }
  return sockets;
}
const isLoopback = (address: string) => /^127\./.test(address) || address === '0'.repeat(31) + '1' || /^0{20}ffff7f/.test(address);

/** Every file under a directory, recursively. */
function filesUnder(root: string): string[] {
  return readdirSync(root).flatMap((name) => {
    const path = join(root, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

describe('the CLI refuses what it must, with exit code 2 and one line', () => {
  let userServer: NatsServer;
  let openServer: NatsServer;
  beforeAll(async () => {
    [userServer, openServer] = await Promise.all([startNatsServer(`authorization { user: ${USER}, password: ${JSON.stringify(PASSWORD)} }`), startNatsServer()]);
  });
  afterAll(async () => {
    await Promise.all([userServer?.stop(), openServer?.stop()]);
  });

  it('gradpool train with a wrong password', async () => {
    const c = gradpool(['train', ...tiny, '--quiet', '--out', join(dir, 'run-wrong-pass'), '--workers', '1', '--nats', userServer.url, '--nats-user', USER, '--nats-pass-file', wrongPassFile]);
    expect(await c.exited).toBe(2);
    expect(c.err()).toBe(`gradpool: cannot connect to NATS at nats://127.0.0.1:${userServer.port}: the server refused our credentials (Authorization Violation)\n`);
    expect(c.out()).toBe('');
  });

  it('gradpool train --nats-require-auth against a server without authentication', async () => {
    const c = gradpool(['train', ...tiny, '--quiet', '--out', join(dir, 'run-no-auth'), '--workers', '1', '--nats', openServer.url, '--nats-require-auth']);
    expect(await c.exited).toBe(2);
    expect(c.err()).toMatch(new RegExp(`^gradpool: NATS at nats://127\\.0\\.0\\.1:${openServer.port} does not require authentication.*--nats-require-auth is set\\n$`));
  });

  it('gradpool worker --nats-require-auth against a server without authentication', async () => {
    const c = gradpool(['worker', '--threads', '1', '--nats', openServer.url, '--nats-require-auth']);
    expect(await c.exited).toBe(2);
    expect(c.err()).toMatch(new RegExp(`^gradpool: NATS at nats://127\\.0\\.0\\.1:${openServer.port} does not require authentication.*--nats-require-auth is set\\n$`));
  });

  it('gradpool worker with a bad --nats URL names the problem without the password', async () => {
    const c = gradpool(['worker', '--nats', `${USER}:hunter2@127.0.0.1:${userServer.port}/x`]);
    expect(await c.exited).toBe(2);
    expect(c.err()).toBe(`gradpool: --nats: ***@127.0.0.1:${userServer.port}/x has a path; allowed: nats://HOST:PORT\n`);
  });
});

describe('a remote-only run with authentication, end to end', () => {
  let userServer: NatsServer;
  let tokenServer: NatsServer;
  beforeAll(async () => {
    [userServer, tokenServer] = await Promise.all([
      startNatsServer(`authorization { user: ${USER}, password: ${JSON.stringify(PASSWORD)} }`),
      startNatsServer(`authorization { token: ${JSON.stringify(TOKEN)} }`),
    ]);
  });
  afterAll(async () => {
    await Promise.all([userServer?.stop(), tokenServer?.stop()]);
  });

  it.each([
    {
      kind: 'user/password',
      secret: PASSWORD,
      server: () => userServer,
      // The worker takes the password from the environment, the coordinator from a file.
      worker: () => ({ args: ['--nats', userServer.url, '--nats-user', USER, '--nats-require-auth'], env: { GRADPOOL_NATS_PASS: PASSWORD } }),
      train: () => ['--nats', userServer.url, '--nats-user', USER, '--nats-pass-file', passFile, '--nats-require-auth'],
    },
    {
      kind: 'token',
      secret: TOKEN,
      server: () => tokenServer,
      worker: () => ({ args: ['--nats', `nats://${TOKEN}@127.0.0.1:${tokenServer.port}`], env: {} }),
      train: () => ['--nats', tokenServer.url, '--nats-token-file', tokenFile, '--nats-require-auth'],
    },
  ])('$kind: completes; no process listens for NATS; the secret is in no file, output or dashboard', async ({ kind, secret, server, worker, train }) => {
    const out = join(dir, `run-${kind.replace('/', '-')}`);
    const w = worker();
    const wk = gradpool(['worker', '--threads', '1', ...w.args], w.env);
    await until('the worker to connect', () => /serving any run on nats:\/\/127\.0\.0\.1/.test(wk.err()) || wk.proc.exitCode !== null);
    expect(wk.proc.exitCode).toBeNull();

    // The worker holds a connection to the server and listens on nothing.
    const workerSockets = tcpSockets(wk.proc.pid!);
    expect(workerSockets.some((s) => !s.listening && s.remotePort === server().port)).toBe(true);
    expect(workerSockets.filter((s) => s.listening)).toEqual([]);

    const tr = gradpool(['train', ...tiny, '--json', '--out', out, '--workers', '0', '--blocks', '2', ...train()]);
    await until('the run to start', () => /"event":"start"/.test(tr.out()) || tr.proc.exitCode !== null);
    const start = JSON.parse(tr.out().split('\n').find((l) => l.includes('"event":"start"'))!) as { url: string };
    // The coordinator's only listening socket is the dashboard's, on loopback (step 1 waits
    // for the remote worker to build its replica, so the run is still going here).
    const listening = tcpSockets(tr.proc.pid!).filter((s) => s.listening);
    expect(listening.map((s) => s.port)).toEqual([Number(new URL(start.url).port)]);
    expect(listening.every((s) => isLoopback(s.address))).toBe(true);
    const apiRun = await (await fetch(`${start.url}/api/run`)).text();
    expect(apiRun).toContain('"hidden":16');
    expect(apiRun).not.toContain(secret);
    expect(await tr.exited).toBe(0);
    expect(tr.out()).toMatch(/"event":"done","steps":2/);
    expect(wk.err()).toMatch(/replica of lstm/);
    // Still listening on nothing after serving the run's shards.
    expect(tcpSockets(wk.proc.pid!).filter((s) => s.listening)).toEqual([]);

    // The run config is saved (so the search below looks where it would be), without the secret.
    const files = filesUnder(out);
    expect(files.map((f) => f.slice(out.length + 1)).sort()).toEqual(expect.arrayContaining(['checkpoint.pb', 'model.safetensors']));
    expect(readFileSync(join(out, 'checkpoint.pb')).includes('"blocks":2')).toBe(true);
    expect(readFileSync(join(out, 'model.safetensors')).includes('gradpool.run')).toBe(true);
    const forms = [...new Set([secret, encodeURIComponent(secret)])];
    for (const f of files) {
      const bytes = readFileSync(f);
      for (const form of forms) expect(bytes.includes(form), `${f} holds ${form}`).toBe(false);
    }
    for (const text of [tr.out(), tr.err(), wk.out(), wk.err()]) for (const form of forms) expect(text).not.toContain(form);
  }, 30_000);
});
