// The skip rule for tests that need a system tool (test/helpers/system-tool.ts): skipped with
// one line outside CI, failed under CI=true, run when the tool is there.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { systemTool } from '../helpers/system-tool.js';

afterEach(() => vi.restoreAllMocks());

describe('systemTool', () => {
  const missing = '/usr/bin/chromium not found; apt-get install chromium';

  it('missing outside CI: skip, with one line naming the file and what is missing', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const tool = systemTool('browser.test.ts', false, missing, false);
    expect(tool.skip).toBe(true);
    expect(warn.mock.calls).toEqual([[`browser.test.ts: skipped, ${missing}`]]);
  });

  it('missing under CI: no skip, and each test fails naming what is missing', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const tool = systemTool('browser.test.ts', false, missing, true);
    expect(tool.skip).toBe(false);
    expect(() => tool.require()).toThrow(`${missing} (CI=true: a test that needs it fails instead of skipping)`);
    expect(warn).not.toHaveBeenCalled();
  });

  it('present: runs, silently, in and out of CI', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    for (const ci of [false, true]) {
      const tool = systemTool('browser.test.ts', true, missing, ci);
      expect(tool.skip).toBe(false);
      expect(() => tool.require()).not.toThrow();
    }
    expect(warn).not.toHaveBeenCalled();
  });
});
