#!/usr/bin/env node
// Pre-test step of `npm test`, `npm run test:e2e` and .ci/run: the Debian packages the end-to-end
// tests run. As root it installs the missing ones with apt-get; otherwise it names them in one line.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const onPath = (name) => ['/usr/bin', '/bin', '/usr/sbin', '/sbin'].map((dir) => `${dir}/${name}`);

/**
 * The one list: each package with the files the tests run from it, each file as the paths
 * the tests accept for it (any one will do).
 */
export const SYSTEM_PACKAGES = [
  { name: 'nats-server', files: [['/usr/sbin/nats-server', '/usr/bin/nats-server']] }, // test/helpers/nats-server.ts
  { name: 'prometheus', files: [['/usr/bin/prometheus'], ['/usr/bin/promtool']] }, // test/e2e/prometheus.test.ts
  { name: 'chromium', files: [['/usr/bin/chromium']] }, // test/e2e/browser.test.ts
  { name: 'openssl', files: [onPath('openssl')] }, // test/e2e/nats-auth.test.ts: TLS certificates
  { name: 'mount', files: [onPath('mount'), onPath('umount')] }, // test/e2e/crash-safety.test.ts: tmpfs, read-only binds
  { name: 'util-linux', files: [onPath('taskset')] }, // test/unit/cores.test.ts, bench/cores.ts: a probe pinned to each core
  { name: 'gcc-aarch64-linux-gnu', files: [['/usr/bin/aarch64-linux-gnu-gcc']] }, // test/e2e/native-portable.test.ts: the ARM64 build
  { name: 'iproute2', files: [onPath('ip'), onPath('tc'), onPath('ss')] }, // test/e2e/netns*.test.ts: namespaces, veth, bridge, tbf
];

/** Whether every file of a package is where the tests look for it. */
export function isInstalled(pkg) {
  return pkg.files.every((paths) => paths.some((path) => existsSync(path)));
}

function runCommand(command, args) {
  const r = spawnSync(command, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return r.status ?? 1;
}

/**
 * Installs what is missing when it may (root, with apt-get), else names it. Returns the exit
 * code. Every side effect is a parameter, so the unit test drives the decision.
 */
export function ensureSystemPackages({
  packages = SYSTEM_PACKAGES,
  installed = isInstalled,
  isRoot = process.getuid?.() === 0,
  hasAptGet = existsSync('/usr/bin/apt-get'),
  run = runCommand,
  log = (line) => console.error(line),
} = {}) {
  const missing = () => packages.filter((pkg) => !installed(pkg)).map((pkg) => pkg.name);
  const before = missing();
  if (before.length === 0) return 0;
  if (!isRoot || !hasAptGet) {
    log(`gradpool's tests need Debian packages missing here; install them with: sudo apt-get install -y ${before.join(' ')}`);
    return 1;
  }
  log(`system-deps: installing ${before.join(' ')} with apt-get`);
  const update = run('apt-get', ['update', '-qq']);
  const install = update === 0 ? run('apt-get', ['install', '-y', '-qq', ...before]) : update;
  const after = missing();
  if (install !== 0 || after.length > 0) {
    log(`system-deps: apt-get ${update === 0 ? 'install' : 'update'} exited with ${install}; still missing: ${after.join(' ') || 'none'}`);
    return 1;
  }
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = ensureSystemPackages();
