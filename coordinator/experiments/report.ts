// Writing an experiment's results: a markdown report, its figures (SVG, PNG) and the
// raw numbers (JSON), into one directory.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Report {
  name: string;
  markdown: string;
  /** File name → SVG text or PNG bytes. */
  figures: Record<string, string | Uint8Array>;
  data: unknown;
}

export function writeReport(dir: string, report: Report): string[] {
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  const put = (file: string, text: string | Uint8Array) => {
    writeFileSync(join(dir, file), text);
    written.push(join(dir, file));
  };
  put(`${report.name}.md`, report.markdown);
  for (const [file, figure] of Object.entries(report.figures)) put(file, figure);
  put(`${report.name}.json`, JSON.stringify(report.data, null, 1) + '\n');
  return written;
}

/** A markdown table from a header row and body rows. */
export function table(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}
