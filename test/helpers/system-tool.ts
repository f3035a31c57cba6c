// Test helper: tests that need a system tool (chromium, prometheus, mounting) skip without it
// outside CI, saying in one line what is missing; under CI=true they run and fail instead.

/** CI=true (or any value but "" / "0" / "false"), as CI services set it. */
export const inCI = !['', '0', 'false'].includes((process.env.CI ?? '').toLowerCase());

export interface SystemTool {
  /** For it.skipIf / describe.skipIf: missing, outside CI. */
  skip: boolean;
  /** First line of each test that needs the tool: fails it, naming what is missing (reached only under CI). */
  require(): void;
}

/**
 * `missing` says what is absent and how to get it, e.g. "/usr/bin/chromium not found; apt-get
 * install chromium". Prints it once, as one line, when the tests are skipped.
 */
export function systemTool(file: string, available: boolean, missing: string, ci = inCI): SystemTool {
  const skip = !available && !ci;
  if (skip) console.warn(`${file}: skipped, ${missing}`);
  return {
    skip,
    require() {
      if (!available) throw new Error(`${missing} (CI=true: a test that needs it fails instead of skipping)`);
    },
  };
}
