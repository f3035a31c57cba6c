// The pre-test step (scripts/system-deps.mjs): what it decides for missing Debian packages,
// with the package probe, root, apt-get and the commands it runs all injected.

import { describe, expect, it } from 'vitest';
import { SYSTEM_PACKAGES, ensureSystemPackages, isInstalled } from '../../scripts/system-deps.mjs';

/** A machine where `absent` are not installed until an `apt-get install` names them. */
function machine(absent: string[], options: { isRoot: boolean; hasAptGet?: boolean; failing?: string }) {
  const missing = new Set(absent);
  const commands: string[] = [];
  const lines: string[] = [];
  const code = ensureSystemPackages({
    installed: (pkg) => !missing.has(pkg.name),
    isRoot: options.isRoot,
    hasAptGet: options.hasAptGet ?? true,
    run: (command, args) => {
      commands.push([command, ...args].join(' '));
      if (args[0] === options.failing) return 100;
      if (args[0] === 'install') for (const name of args) missing.delete(name);
      return 0;
    },
    log: (line) => lines.push(line),
  });
  return { code, commands, lines };
}

describe('system-deps: the Debian packages the tests run', () => {
  it('nothing missing: runs nothing, says nothing, exit 0', () => {
    expect(machine([], { isRoot: true })).toEqual({ code: 0, commands: [], lines: [] });
    expect(machine([], { isRoot: false })).toEqual({ code: 0, commands: [], lines: [] });
  });

  it('missing as root: apt-get update, then installs exactly the missing ones, exit 0', () => {
    const r = machine(['chromium', 'nats-server'], { isRoot: true });
    expect(r.commands).toEqual(['apt-get update -qq', 'apt-get install -y -qq nats-server chromium']);
    expect(r.lines).toEqual(['system-deps: installing nats-server chromium with apt-get']);
    expect(r.code).toBe(0);
  });

  it('missing, not root: one line naming the install command, nothing run, exit 1', () => {
    const r = machine(['prometheus', 'mount'], { isRoot: false });
    expect(r.commands).toEqual([]);
    expect(r.lines).toEqual(["gradpool's tests need Debian packages missing here; install them with: sudo apt-get install -y prometheus mount"]);
    expect(r.code).toBe(1);
  });

  it('root without apt-get (not Debian): the same one line, exit 1', () => {
    const r = machine(['openssl'], { isRoot: true, hasAptGet: false });
    expect(r.commands).toEqual([]);
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toContain('sudo apt-get install -y openssl');
    expect(r.code).toBe(1);
  });

  it('apt-get failing: says which step and what is still missing, exit 1', () => {
    const update = machine(['chromium'], { isRoot: true, failing: 'update' });
    expect(update.commands).toEqual(['apt-get update -qq']);
    expect(update.lines.at(-1)).toBe('system-deps: apt-get update exited with 100; still missing: chromium');
    expect(update.code).toBe(1);
    const install = machine(['chromium'], { isRoot: true, failing: 'install' });
    expect(install.lines.at(-1)).toBe('system-deps: apt-get install exited with 100; still missing: chromium');
    expect(install.code).toBe(1);
  });

  it('lists each package once, with the files the tests run from it', () => {
    const names = SYSTEM_PACKAGES.map((p) => p.name);
    expect(names).toEqual(['nats-server', 'prometheus', 'chromium', 'openssl', 'mount', 'util-linux', 'gcc-aarch64-linux-gnu', 'iproute2']);
    expect(new Set(names).size).toBe(names.length);
    for (const pkg of SYSTEM_PACKAGES) expect(pkg.files.length, pkg.name).toBeGreaterThan(0);
  });

  it('the real probe: a package is installed only when every file is somewhere the tests look', () => {
    expect(isInstalled({ name: 'sh', files: [['/nonexistent/sh', '/bin/sh']] })).toBe(true);
    expect(isInstalled({ name: 'half', files: [['/bin/sh'], ['/nonexistent/tool']] })).toBe(false);
  });
});
