// The `gradpool` command line: train, eval, sample, and dispatch to scale, worker,
// experiment, runs and sweep. Exit codes come from coordinator/exit.ts (bad input 2, anything else 1).

import { backendUnavailable, initBackend } from '../model/backend.js';
import { ConfigError } from '../model/config.js';
import { evalStream } from '../model/evaluate.js';
import { loadModelFile } from '../model/modelfile.js';
import { sampleIds } from '../model/sample.js';
import { DataError, decode, encode } from '../model/tokenizer.js';
import { backendFlag, BOOL_KEYS, flagOf, readConfigFile, resolveTrainConfig, retiredFlag, TRAIN_OPTION_KEYS, trainHelp } from './config.js';
import { readTextFile } from './data.js';
import { runTraining } from './run.js';
import { scaleCommand } from './control.js';
import { EXIT_INPUT, EXIT_INTERRUPTED, reportFailure } from './exit.js';
import { experimentCommand } from './experiments/cli.js';
import { shapesCommand } from './caption/command.js';
import { captionCommand, evalCaptionCommand } from './caption/cli.js';
import { runsCommand } from './registry/command.js';
import { sweepCommand } from './sweep/command.js';
import { dashboardCommand } from './registry/dashboard-command.js';
import { infoCommand } from './info.js';
import { type FlagValues, numberFlag, parseFlags } from '../proto/flags.js';
import { NATS_FLAGS, natsSettingsFrom } from '../proto/nats.js';
import { workerCommand } from '../worker/command.js';

const USAGE = `Usage: gradpool <command> [options]

Commands:
  train     train a model (default: LSTM on the Brown corpus); see gradpool train --help
  eval      evaluate a model file on a text: gradpool eval --model FILE --data FILE [--json]
            or a captioner on a dataset: gradpool eval --model FILE --dataset shapes|DIR [--features FILE] [--split test] [--json]
  caption   caption images with a captioner: gradpool caption --model FILE --image FILE… [--beam K] [--json]
            (over precomputed features: --features FILE --image NAME…)
  sample    generate text: gradpool sample --model FILE [--prompt TEXT] [--length N]
            [--temperature X | --greedy] [--seed S]
  scale     change a running training's worker count: gradpool scale --workers N --run DIR
  worker    serve shard tasks of runs over NATS: gradpool worker --nats URL [--threads N]
  experiment  reproduce a long-range-dependency experiment: gradpool experiment --help
  runs      the runs of the registry: gradpool runs [list|show|compare|rm|import] (see --help)
  sweep     a grid or random search over train options: gradpool sweep --config SWEEP.json
            [--parallel N] | --resume ID | show ID (see --help)
  dashboard  one read-only dashboard for every run of the registry: gradpool dashboard [--registry FILE] [--port N]
  shapes    write the shapes captioning dataset: gradpool shapes --out DIR [--count N] [--seed S]
  info      backends, native kernels and their path, CPU features, versions: gradpool info [--json]`;

const EVAL_HELP = `Usage: gradpool eval --model FILE --data FILE [--json] [--backend wasm|cpu|native]

Feeds the whole text as one stream from a zero state and reports the mean negative
log-likelihood, in nats, of every token after the first given all tokens before it.
  --model FILE      model file (.safetensors) written by gradpool or converted from PyTorch
  --data FILE       UTF-8 text to evaluate on
  --json            print {"loss", "bitsPerToken", "perplexity", "tokens"} as one JSON object
  --backend NAME    wasm, cpu or native (default: wasm)

A captioner is evaluated on images instead: gradpool eval --model FILE --dataset shapes|DIR
[--split test] [--json] (gradpool eval --dataset shapes --help lists its options).`;

const SAMPLE_HELP = `Usage: gradpool sample --model FILE [options]

  --model FILE        model file (.safetensors)
  --prompt TEXT       text to start from (default: a newline, or the first token)
  --length N          tokens to generate (default: 200)
  --temperature X     softmax temperature, > 0 (default: 1)
  --greedy            take the most likely token each step instead of sampling
  --seed S            random seed (default: 1)
  --backend NAME      wasm, cpu or native (default: wasm)`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'train':
        return await train(rest);
      case 'eval':
        return await evaluate(rest);
      case 'sample':
        return await sample(rest);
      case 'scale':
        return await scaleCommand(rest);
      case 'worker':
        return await workerCommand(rest, () => process.exit(EXIT_INTERRUPTED));
      case 'experiment':
        return await experimentCommand(rest);
      case 'runs':
        return await runsCommand(rest);
      case 'sweep':
        return await sweepCommand(rest);
      case 'dashboard':
        return await dashboardCommand(rest);
      case 'info':
        return await infoCommand(rest);
      case 'shapes':
        return await shapesCommand(rest);
      case 'caption':
        return await captionCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? EXIT_INPUT : 0;
      default:
        throw new ConfigError(`unknown command "${command}"; allowed: train, eval, sample, caption, scale, worker, experiment, runs, sweep, dashboard, shapes, info`);
    }
  } catch (e) {
    return reportFailure(e, 'gradpool');
  }
}

function required(values: FlagValues, key: string, help: string): string {
  const v = values[key];
  if (typeof v !== 'string' || v === '') throw new ConfigError(`--${key} is required\n\n${help}`);
  return v;
}

async function train(args: string[]): Promise<number> {
  const options: Record<string, { type: 'string' | 'boolean' }> = { config: { type: 'string' }, ...NATS_FLAGS };
  for (const key of TRAIN_OPTION_KEYS) options[flagOf(key).slice(2)] = { type: BOOL_KEYS.has(key) ? 'boolean' : 'string' };
  for (const arg of args) {
    const retired = retiredFlag(arg);
    if (retired) throw new ConfigError(retired);
  }
  const values = parseFlags(args, options, 'train');
  if (values.help) {
    console.log(trainHelp());
    return 0;
  }
  const flags: Record<string, string | boolean> = {};
  for (const key of TRAIN_OPTION_KEYS) {
    const v = values[flagOf(key).slice(2)];
    if (v !== undefined) flags[key] = v as string | boolean;
  }
  const file = typeof values.config === 'string' ? readConfigFile(values.config) : null;
  const config = resolveTrainConfig(file, flags, typeof values.config === 'string' ? values.config : undefined);
  const unavailable = backendUnavailable(config.backend);
  if (unavailable) throw new ConfigError(unavailable); // before any worker thread tries it
  const nats = natsSettingsFrom(values);
  return runTraining(config, new Set([...Object.keys(file ?? {}), ...Object.keys(flags)]), nats);
}

async function evaluate(args: string[]): Promise<number> {
  // A captioner is measured on a dataset of images (coordinator/caption/cli.ts).
  if (args.some((a) => a === '--dataset' || a.startsWith('--dataset='))) return evalCaptionCommand(args);
  const values = parseFlags(args, { model: { type: 'string' }, data: { type: 'string' }, json: { type: 'boolean' }, backend: { type: 'string' } }, 'eval');
  if (values.help) {
    console.log(EVAL_HELP);
    return 0;
  }
  const modelPath = required(values, 'model', EVAL_HELP);
  const dataPath = required(values, 'data', EVAL_HELP);
  const backend = backendFlag(values.backend);
  const model = await loadModelFile(modelPath);
  if (model.config.task === 'caption') throw new ConfigError(`${modelPath} holds a captioner: evaluate it on images with --dataset shapes|DIR`);
  const text = readTextFile(dataPath);
  const ids = encode({ kind: model.tokens, tokens: model.vocab }, text);
  if (ids.length < 2) throw new DataError(`${dataPath}: needs at least 2 tokens to evaluate, has ${ids.length}`);
  await initBackend(backend);
  const r = evalStream(model.layout, model.params, ids);
  if (values.json) {
    console.log(JSON.stringify({ loss: r.loss, bitsPerToken: r.bitsPerToken, perplexity: r.perplexity, tokens: r.tokens }));
  } else {
    console.log(`${r.loss.toFixed(4)} nats/token, ${r.bitsPerToken.toFixed(4)} bits/token, perplexity ${r.perplexity.toFixed(3)} over ${r.tokens} tokens`);
  }
  return 0;
}

async function sample(args: string[]): Promise<number> {
  const values = parseFlags(args, {
    model: { type: 'string' },
    prompt: { type: 'string' },
    length: { type: 'string' },
    temperature: { type: 'string' },
    greedy: { type: 'boolean' },
    seed: { type: 'string' },
    backend: { type: 'string' },
  }, 'sample');
  if (values.help) {
    console.log(SAMPLE_HELP);
    return 0;
  }
  const modelPath = required(values, 'model', SAMPLE_HELP);
  if (values.greedy && values.temperature !== undefined) throw new ConfigError('--temperature and --greedy exclude each other');
  const length = numberFlag(values.length, '--length', { integer: true, min: 1, max: 1_000_000 }) ?? 200;
  const temperature = numberFlag(values.temperature, '--temperature', { integer: false, min: 0, minExclusive: true, max: 100 }) ?? 1;
  const seed = numberFlag(values.seed, '--seed', { integer: true, min: 0, max: 2 ** 32 - 1 }) ?? 1;
  const backend = backendFlag(values.backend);
  const model = await loadModelFile(modelPath);
  const vocab = { kind: model.tokens, tokens: model.vocab };
  const promptText = typeof values.prompt === 'string' && values.prompt !== '' ? values.prompt : model.vocab.includes('\n') ? '\n' : model.vocab[0];
  const prompt = encode(vocab, promptText);
  if (prompt.length === 0) throw new DataError('--prompt holds no token');
  await initBackend(backend);
  const ids = sampleIds(model.layout, model.params, { prompt, length, temperature, greedy: !!values.greedy, seed });
  process.stdout.write((typeof values.prompt === 'string' ? values.prompt : '') + decode(vocab, ids) + '\n');
  return 0;
}
