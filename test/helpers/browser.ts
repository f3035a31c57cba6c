// Test helper: the headless Chromium every browser test drives (Debian's, through
// playwright-core: nothing is downloaded), and a page that collects its script errors.

import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import { systemTool } from './system-tool.js';

export const CHROMIUM = '/usr/bin/chromium';

/** The browser tests' gate: skip with one line outside CI, fail under CI=true (see system-tool.ts). */
export const chromiumTool = (file: string) => systemTool(file, existsSync(CHROMIUM), `${CHROMIUM} not found; apt-get install chromium`);

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
}

/** A 1280×900 page and the list its uncaught errors and console errors (but those `ignored`) go to. */
export async function watchedPage(browser: Browser, ignored: (text: string) => boolean = () => false): Promise<{ page: Page; pageErrors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !ignored(m.text())) pageErrors.push(m.text());
  });
  return { page, pageErrors };
}
