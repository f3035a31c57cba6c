// The `gradpool` command line: train, eval, sample. Bad input exits with code 2 and
// a message naming the problem; anything else unexpected exits with 1.

import { parseArgs } from 'node:util';
import { initBackend, type BackendName, BACKENDS, backendUnavailable } from '../model/backend.js';
import { ConfigError } from '../model/config.js';
import { evalStream } from '../model/evaluate.js';
import { loadModelFile, ModelFileError } from '../model/modelfile.js';
import { SafetensorsError } from '../model/safetensors.js';
import { sampleIds } from '../model/sample.js';
import { DataError, decode, encode } from '../model/tokenizer.js';
import { BOOL_KEYS, flagOf, readConfigFile, resolveTrainConfig, TRAIN_OPTION_KEYS, trainHelp } from './config.js';
import { readTextFile } from './data.js';
import { runTraining } from './run.js';
import { TrainingError } from './trainer.js';
import { CheckpointError } from './checkpoint.js';
import { scaleCommand } from './control.js';
import { experimentCommand } from './experiments/cli.js';
import { closeNats, connectNats, NATS_FLAGS, NATS_HELP, natsSettingsFrom, natsWarnings, processId } from '../proto/nats.js';
import { threadsFlag, WORKER_HELP_HEAD, WorkerHost } from '../worker/host.js';

const USAGE = `Usage: gradpool <command> [options]

Commands:
  train     train a model (default: LSTM on the Brown corpus); see gradpool train --help
  eval      evaluate a model file on a text: gradpool eval --model FILE --data FILE [--json]
  sample    generate text: gradpool sample --model FILE [--prompt TEXT] [--length N]
            [--temperature X | --greedy] [--seed S]
  scale     change a running training's worker count: gradpool scale --workers N --run DIR
  worker    serve shard tasks of runs over NATS: gradpool worker --nats URL [--threads N]
  experiment  reproduce a long-range-dependency experiment: gradpool experiment --help`;

const EVAL_HELP = `Usage: gradpool eval --model FILE --data FILE [--json] [--backend wasm|cpu]

Feeds the whole text as one stream from a zero state and reports the mean negative
log-likelihood, in nats, of every token after the first given all tokens before it.
  --model FILE      model file (.safetensors) written by gradpool or converted from PyTorch
  --data FILE       UTF-8 text to evaluate on
  --json            print {"loss", "bitsPerToken", "perplexity", "tokens"} as one JSON object
  --backend NAME    tfjs backend: wasm or cpu (default: wasm)`;

const SAMPLE_HELP = `Usage: gradpool sample --model FILE [options]

  --model FILE        model file (.safetensors)
  --prompt TEXT       text to start from (default: a newline, or the first token)
  --length N          tokens to generate (default: 200)
  --temperature X     softmax temperature, > 0 (default: 1)
  --greedy            take the most likely token each step instead of sampling
  --seed S            random seed (default: 1)
  --backend NAME      tfjs backend: wasm or cpu (default: wasm)`;

/** Errors that are the user's to fix: exit code 2. */
function isInputError(e: unknown): boolean {
  return (
    e instanceof ConfigError ||
    e instanceof DataError ||
    e instanceof ModelFileError ||
    e instanceof SafetensorsError ||
    e instanceof CheckpointError
  );
}

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
        return await workerCommand(rest);
      case 'experiment':
        return await experimentCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new ConfigError(`unknown command "${command}"; allowed: train, eval, sample, scale, worker, experiment`);
    }
  } catch (e) {
    if (isInputError(e)) {
      console.error(`gradpool: ${(e as Error).message}`);
      return 2;
    }
    if (e instanceof TrainingError) {
      console.error(`gradpool: ${e.message}`);
      return 1;
    }
    console.error(e);
    return 1;
  }
}

function parse(args: string[], options: Record<string, { type: 'string' | 'boolean' }>, command: string): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean' } }, strict: true, allowPositionals: false })
      .values as Record<string, string | boolean | undefined>;
  } catch (e) {
    const message = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '').replace(/\n+/g, ' ');
    throw new ConfigError(`${message}; see gradpool ${command} --help`);
  }
}

function required(values: Record<string, unknown>, key: string, help: string): string {
  const v = values[key];
  if (typeof v !== 'string' || v === '') throw new ConfigError(`--${key} is required\n\n${help}`);
  return v;
}

function backendOf(value: unknown): BackendName {
  if (value === undefined) return 'wasm';
  if (!(BACKENDS as readonly unknown[]).includes(value)) {
    throw new ConfigError(`--backend is ${JSON.stringify(value)}; allowed: ${BACKENDS.join(', ')}`);
  }
  const unavailable = backendUnavailable(value as BackendName);
  if (unavailable) throw new ConfigError(unavailable);
  return value as BackendName;
}

function numberFlag(values: Record<string, unknown>, key: string, fallback: number, ok: (n: number) => boolean, allowed: string): number {
  const text = values[key];
  if (text === undefined) return fallback;
  const n = Number(text);
  if (typeof text !== 'string' || text.trim() === '' || !ok(n)) {
    throw new ConfigError(`--${key} is ${JSON.stringify(text)}; allowed: ${allowed}`);
  }
  return n;
}

async function train(args: string[]): Promise<number> {
  const options: Record<string, { type: 'string' | 'boolean' }> = { config: { type: 'string' }, ...NATS_FLAGS };
  for (const key of TRAIN_OPTION_KEYS) options[flagOf(key).slice(2)] = { type: BOOL_KEYS.has(key) ? 'boolean' : 'string' };
  const values = parse(args, options, 'train');
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

async function workerCommand(args: string[]): Promise<number> {
  const values = parse(args, { threads: { type: 'string' }, run: { type: 'string' }, name: { type: 'string' }, ...NATS_FLAGS }, 'worker');
  if (values.help) {
    console.log(`${WORKER_HELP_HEAD}\n${NATS_HELP}`);
    return 0;
  }
  if (values.nats === undefined) throw new ConfigError(`--nats URL is required\n\n${WORKER_HELP_HEAD}\n${NATS_HELP}`);
  const settings = natsSettingsFrom(values)!;
  const threads = threadsFlag(values.threads);
  const idOk = (v: unknown) => typeof v === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(v);
  if (values.run !== undefined && !idOk(values.run)) throw new ConfigError(`--run is ${JSON.stringify(values.run)}; allowed: a run id (letters, digits, _ and -)`);
  if (values.name !== undefined && !idOk(values.name)) throw new ConfigError(`--name is ${JSON.stringify(values.name)}; allowed: 1 to 64 letters, digits, _ and -`);
  const id = (values.name as string | undefined) ?? processId('worker');
  for (const w of natsWarnings(settings)) console.error(`gradpool worker: warning: ${w}`);
  const nc = await connectNats(settings, `gradpool ${id}`);
  const log = (line: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
  const host = new WorkerHost(nc, {
    id, prefix: settings.prefix, threads, run: (values.run as string | undefined) ?? null, idleMs: 10 * 60_000, heartbeatMs: 1_000, log,
  });
  host.start();
  log(`gradpool worker ${id}: ${threads} threads, serving ${values.run ? `run ${values.run}` : 'any run'} on ${settings.display} (subjects ${settings.prefix}.*)`);
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') log(`disconnected from NATS; reconnecting…`);
      else if (s.type === 'reconnect') log('reconnected to NATS');
    }
  })();
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) process.exit(130);
      stopping = true;
      log('stopping: finishing the shards held (again to abort)…');
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    void nc.closed().then((err) => {
      if (err) log(`NATS connection closed: ${err.message}`);
      resolve();
    });
  });
  await host.close();
  await closeNats(nc);
  log(`gradpool worker ${id}: served ${host.served} shards (${host.failed} failed); bye`);
  return 0;
}

async function evaluate(args: string[]): Promise<number> {
  const values = parse(args, { model: { type: 'string' }, data: { type: 'string' }, json: { type: 'boolean' }, backend: { type: 'string' } }, 'eval');
  if (values.help) {
    console.log(EVAL_HELP);
    return 0;
  }
  const modelPath = required(values, 'model', EVAL_HELP);
  const dataPath = required(values, 'data', EVAL_HELP);
  const backend = backendOf(values.backend);
  const model = await loadModelFile(modelPath);
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
  const values = parse(args, {
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
  const length = numberFlag(values, 'length', 200, (n) => Number.isInteger(n) && n >= 1 && n <= 1_000_000, 'an integer from 1 to 1000000');
  const temperature = numberFlag(values, 'temperature', 1, (n) => Number.isFinite(n) && n > 0 && n <= 100, 'a number > 0 and ≤ 100');
  const seed = numberFlag(values, 'seed', 1, (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32, 'an integer from 0 to 4294967295');
  const backend = backendOf(values.backend);
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
