// `gradpool runs`: the runs of a registry — list, show, compare, remove, and import a
// run directory (its history.jsonl) into the registry.

import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../../model/config.js';
import { HISTORY_FILE, type HistoryLine, writeBatch } from './recorder.js';
import { DEFAULT_REGISTRY } from '../config.js';
import { findRun, listRuns, openRegistry, RegistryError, removeRun, type RunRow, stepHistory, upsertRun, validationHistory, type ValidationRow } from './store.js';


export const RUNS_HELP = `Usage: gradpool runs [list] [--registry FILE] [--json]
       gradpool runs show ID [--json]
       gradpool runs compare ID ID… [--json]
       gradpool runs rm ID [--files]
       gradpool runs import DIR

The runs recorded in the registry (default ${DEFAULT_REGISTRY}); an ID may be a unique prefix.
  list        every run: status, cell and size, steps, best validation loss (and, when
              captioners are listed, their best BLEU-4), tokens/s, start, duration
  show        one run: its config and its curves' key figures (a captioner's: best BLEU-4 and accuracy)
  compare     the runs' config differences and key figures side by side
  rm          removes a run from the registry; with --files also its run directory
  import      adds or refreshes a run from its directory (DIR/history.jsonl)
  --registry FILE   the registry file
  --json            machine-readable output`;

const fmt = (v: number | null | undefined, digits = 4) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));
const duration = (r: RunRow) => {
  const ms = (r.endedAt ?? r.heartbeatAt) - r.startedAt;
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
};
/** An image captioner (`gradpool train --task caption`): its validations carry BLEU-4 and accuracy. */
const isCaptioner = (r: RunRow) => r.config.task === 'caption';
const model = (r: RunRow) => `${String(r.config.cell ?? '?')} ${String(r.config.layers ?? 1)}×${String(r.config.hidden ?? '?')}`;

/** The validation with the highest `key` (the first of equals); null when none has one. */
function highest(vals: ValidationRow[], key: 'bleu4' | 'accuracy'): ValidationRow | null {
  return vals.reduce<ValidationRow | null>((b, v) => (v[key] !== null && (!b || v[key]! > b[key]!) ? v : b), null);
}

/** Key figures of a run's curves; a captioner's also its best BLEU-4 and accuracy (null on a registry that never had them). */
function figures(db: ReturnType<typeof openRegistry>, r: RunRow): Record<string, number | null> {
  const steps = stepHistory(db, r.id);
  const vals = validationHistory(db, r.id);
  const finite = steps.filter((s) => s.loss !== null);
  const best = vals.reduce<{ step: number; loss: number } | null>((b, v) => (!b || v.loss < b.loss ? { step: v.step, loss: v.loss } : b), null);
  const tps = steps.map((s) => s.tokensPerSecond).filter((v): v is number => v !== null && v > 0);
  const bleu4 = highest(vals, 'bleu4');
  const accuracy = highest(vals, 'accuracy');
  const caption: Record<string, number | null> = isCaptioner(r) ? { bestBleu4: bleu4?.bleu4 ?? null, bestBleu4Step: bleu4?.step ?? null, bestAccuracy: accuracy?.accuracy ?? null, bestAccuracyStep: accuracy?.step ?? null } : {};
  return {
    steps: r.lastStep ?? 0,
    firstLoss: finite[0]?.loss ?? null,
    lastLoss: finite[finite.length - 1]?.loss ?? null,
    bestValLoss: best?.loss ?? null,
    bestValStep: best?.step ?? null,
    lastValLoss: vals[vals.length - 1]?.loss ?? null,
    medianTokensPerSecond: tps.length ? tps.sort((a, b) => a - b)[tps.length >> 1] : null,
    ...caption,
  };
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd()).join('\n');
}

/** Applies a run directory's history.jsonl to the registry. */
export function importRun(registryPath: string, dir: string): { id: string; lines: number } {
  const path = join(dir, HISTORY_FILE);
  if (!existsSync(path)) throw new ConfigError(`gradpool runs import ${dir}: no ${HISTORY_FILE} there (it is written by runs of gradpool with a registry)`);
  const lines: HistoryLine[] = [];
  const texts = readFileSync(path, 'utf8').split('\n');
  let lastText = texts.length - 1;
  while (lastText > 0 && texts[lastText].trim() === '') lastText--;
  texts.forEach((text, i) => {
    if (text.trim() === '') return;
    try {
      lines.push(JSON.parse(text) as HistoryLine);
    } catch {
      // A run killed mid-append leaves a cut last line: everything before it counts.
      if (i !== lastText) throw new ConfigError(`${path}:${i + 1}: not a JSON history line`);
    }
  });
  const runs = lines.filter((l): l is Extract<HistoryLine, { type: 'run' }> => l.type === 'run');
  if (runs.length === 0) throw new ConfigError(`${path}: no run line; not a gradpool history file`);
  const db = openRegistry(registryPath);
  try {
    const first = runs[0].data;
    // Each resume starts with a run line: replay them in order so cut-short history is dropped as it was live.
    let start = 0;
    for (let i = 0; i <= lines.length; i++) {
      if (i === lines.length || (lines[i].type === 'run' && i > start)) {
        const head = lines[start] as Extract<HistoryLine, { type: 'run' }>;
        upsertRun(db, { ...head.data, dir: resolve(dir), startedAt: first.startedAt }, head.data.startedAt ?? Date.now());
        writeBatch(db, first.id, lines.slice(start + 1, i));
        start = i;
      }
    }
    // Without an end line the run was cut short: its heartbeat is its last event.
    const last = lines[lines.length - 1];
    if (last.type !== 'end') {
      const time = lines.reduce((t, l) => ('data' in l && typeof (l.data as { time?: number }).time === 'number' ? Math.max(t, (l.data as { time: number }).time) : t), 0);
      db.prepare("UPDATE runs SET heartbeat_at = ? WHERE id = ? AND status = 'running'").run(time, first.id);
    }
    return { id: first.id, lines: lines.length };
  } finally {
    db.close();
  }
}

export async function runsCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { registry: { type: 'string' }, json: { type: 'boolean' }, files: { type: 'boolean' }, help: { type: 'boolean' } }, strict: true, allowPositionals: true });
  } catch (e) {
    throw new ConfigError(`${(e as Error).message.split('\n')[0]}; see gradpool runs --help`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(RUNS_HELP);
    return 0;
  }
  const [sub = 'list', ...ids] = positionals;
  const registry = values.registry ?? DEFAULT_REGISTRY;
  if (sub === 'import') {
    if (ids.length !== 1) throw new ConfigError('gradpool runs import takes one run directory');
    const r = importRun(registry, ids[0]);
    console.log(`imported run ${r.id} (${r.lines} history lines) into ${registry}`);
    return 0;
  }
  if (!['list', 'show', 'compare', 'rm'].includes(sub)) throw new ConfigError(`unknown runs command "${sub}"; allowed: list, show, compare, rm, import`);
  if (!existsSync(registry)) throw new ConfigError(`registry ${registry} does not exist (runs create it; --registry FILE names another)`);
  const db = openRegistry(registry, { readonly: sub !== 'rm' });
  try {
    const find = (id: string) => {
      const r = findRun(db, id);
      if (!r) throw new ConfigError(`no run "${id}" in ${registry}`);
      return r;
    };
    if (sub === 'list') {
      const runs = listRuns(db);
      if (values.json) {
        console.log(JSON.stringify(runs));
        return 0;
      }
      if (runs.length === 0) {
        console.log(`no runs in ${registry}`);
        return 0;
      }
      // A captioner's best BLEU-4 beside the best validation loss, when there is a captioner to show.
      const captions = runs.some(isCaptioner);
      const rows = [['id', 'name', 'status', 'model', 'steps', 'best val', ...(captions ? ['BLEU-4'] : []), 'tokens/s', 'started', 'duration']];
      for (const r of runs) {
        rows.push([
          r.id, r.name ?? '', r.status, model(r), `${r.lastStep ?? 0}/${r.stepsTarget ?? '?'}`, fmt(r.bestValLoss), ...(captions ? [fmt(r.bestBleu4)] : []),
          r.tokensPerSecond ? String(Math.round(r.tokensPerSecond)) : '-', new Date(r.startedAt).toISOString().slice(0, 16).replace('T', ' '), duration(r),
        ]);
      }
      console.log(table(rows));
      return 0;
    }
    if (sub === 'rm') {
      if (ids.length === 0) throw new ConfigError('gradpool runs rm needs a run id');
      for (const id of ids) {
        const r = find(id);
        if (r.status === 'running') throw new ConfigError(`run ${r.id} is still running; stop it first`);
        removeRun(db, r.id);
        if (values.files) rmSync(r.dir, { recursive: true, force: true });
        console.log(`removed run ${r.id}${values.files ? ` and ${r.dir}` : ''}`);
      }
      return 0;
    }
    if (ids.length === 0 || (sub === 'compare' && ids.length < 2)) throw new ConfigError(`gradpool runs ${sub} needs ${sub === 'compare' ? 'two or more run ids' : 'a run id'}`);
    const runs = ids.map(find);
    const figs = runs.map((r) => figures(db, r));
    if (sub === 'show') {
      const [r] = runs;
      if (values.json) console.log(JSON.stringify({ ...r, figures: figs[0], history: stepHistory(db, r.id), validations: validationHistory(db, r.id) }));
      else {
        console.log(`run ${r.id}${r.name ? ` (${r.name})` : ''}: ${r.status}, ${model(r)}, ${r.dir}`);
        console.log(table([['key', 'value'], ...Object.entries(r.config).map(([k, v]) => [k, JSON.stringify(v)]), ...Object.entries(figs[0]).map(([k, v]) => [k, typeof v === 'number' ? String(Number(v.toFixed(4))) : '-'])]));
      }
      return 0;
    }
    // compare: config keys that differ, then key figures, one column per run.
    const keys = [...new Set(runs.flatMap((r) => Object.keys(r.config)))].sort();
    const differing = keys.filter((k) => new Set(runs.map((r) => JSON.stringify(r.config[k]))).size > 1);
    if (values.json) {
      console.log(JSON.stringify({ runs: runs.map((r) => r.id), differences: Object.fromEntries(differing.map((k) => [k, runs.map((r) => r.config[k] ?? null)])), figures: figs }));
      return 0;
    }
    const rows = [['', ...runs.map((r) => r.name ?? r.id)]];
    for (const k of differing) rows.push([k, ...runs.map((r) => JSON.stringify(r.config[k] ?? null))]);
    // Every run's figures (a captioner's BLEU-4 and accuracy are '-' beside a language model).
    for (const k of new Set(figs.flatMap((f) => Object.keys(f)))) rows.push([k, ...figs.map((f) => (f[k] === null || f[k] === undefined ? '-' : String(Number(f[k].toFixed(4)))))]);
    console.log(table(rows));
    return 0;
  } catch (e) {
    if (e instanceof RegistryError) throw new ConfigError(e.message);
    throw e;
  } finally {
    db.close();
  }
}
