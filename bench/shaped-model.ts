// docs/SCALING.md's model of a step's time over NATS, as pure functions of measured constants:
// the doc's own form (nats-server on the coordinator's machine, one link of rate BW) and the form
// adapted to the emulated network of the shaped bench (bench/shaped.ts), where nats-server is a
// host of its own between the coordinator and the workers:
//
//   coordinator ──(4P once)──▶ nats ──(W × 4P)──▶ workers          weights
//   coordinator ◀──(W × G)─── nats ◀──(W × G)─── workers          gradients
//
// nats-server forwards a message only once it holds all of it (store and forward), and a
// message is one chunk of at most max_payload − 1,024 data bytes (proto/chunks.ts), so the
// second hop of a chunk cannot start before its first hop ends: twoHopBytes below.

/** The chunk sizes a payload of `bytes` is cut into (every chunk full but the last). */
export function chunkSizes(bytes: number, chunkBytes: number): number[] {
  if (!(bytes > 0) || !(chunkBytes > 0)) throw new Error(`chunkSizes: bytes ${bytes} and chunkBytes ${chunkBytes} must be positive`);
  const sizes: number[] = [];
  for (let left = bytes; left > 0; left -= chunkBytes) sizes.push(Math.min(left, chunkBytes));
  return sizes;
}

/**
 * The time, in byte-times of a link, until the last chunk has crossed two links in series
 * through a store-and-forward relay. Each chunk j goes `inCopies` times over the first link
 * (from that many senders, interleaved) and `outCopies` times over the second; the relay
 * forwards chunk j once all its copies are in:
 *
 *   in_j  = inCopies · (m_1 + … + m_j) · inScale
 *   out_j = max(out_{j−1}, in_j) + outCopies · m_j · outScale
 *
 * A scale is the link's time per byte in units of the rate the result is divided by: 1 for a
 * shaped link, 0 for loopback (nats-server on the same machine as that end). Returns out_last.
 */
export function twoHopBytes(chunks: readonly number[], inCopies: number, outCopies: number, inScale = 1, outScale = 1): number {
  let arrived = 0;
  let out = 0;
  for (const m of chunks) {
    arrived += inCopies * m * inScale;
    out = Math.max(out, arrived) + outCopies * m * outScale;
  }
  return out;
}

/** What a prediction is made from: all measured in the same run but the per-byte CPU costs. */
export interface StepInputs {
  /** Worker processes, one task each. */
  workers: number;
  /** Each direction of every link, bits per second. */
  linkBitsPerSecond: number;
  /** One weights version as published (payload bytes, all its chunks). */
  weightsBytes: number;
  /** One task's result (gradient, final states, envelope), payload bytes. */
  resultBytes: number;
  /** Data bytes per chunk (max_payload − 1,024). */
  chunkBytes: number;
  /** Bytes on the wire per payload byte (TCP/IP and Ethernet headers, NATS protocol): measured on the links. */
  wireOverhead: number;
  /** The step's slowest task, forward + backward, ms (measured in the workers). */
  computeMs: number;
  /** The coordinator's own phases: decode + reduce + Adam + publish, ms. */
  coordinatorMs: number;
  /** A worker's CPU per weight byte taken in and per result byte sent, ns (docs/SCALING.md: 2.8 and 1.2). */
  workerInNsPerByte: number;
  workerOutNsPerByte: number;
  /** Round trips and scheduling, ms (docs/SCALING.md assumes 1). */
  latencyMs: number;
}

export interface StepPrediction {
  weightsMs: number;
  gradientsMs: number;
  workerCpuMs: number;
  stepMs: number;
}

/** `coordinatorHop`: 1 if the coordinator ↔ nats-server hop is a shaped link, 0 if it is loopback. */
function predict(x: StepInputs, coordinatorHop: number): StepPrediction {
  const bytesPerMs = x.linkBitsPerSecond / 8 / 1000 / x.wireOverhead;
  const weightsMs = twoHopBytes(chunkSizes(x.weightsBytes, x.chunkBytes), 1, x.workers, coordinatorHop, 1) / bytesPerMs;
  const gradientsMs = twoHopBytes(chunkSizes(x.resultBytes, x.chunkBytes), x.workers, x.workers, 1, coordinatorHop) / bytesPerMs;
  const workerCpuMs = (x.weightsBytes * x.workerInNsPerByte + x.resultBytes * x.workerOutNsPerByte) / 1e6;
  return { weightsMs, gradientsMs, workerCpuMs, stepMs: x.latencyMs + x.coordinatorMs + weightsMs + x.computeMs + workerCpuMs + gradientsMs };
}

/**
 * docs/SCALING.md "The model" as written: nats-server on the coordinator's machine, so only
 * its link counts: W copies of the weights out, then W results in, one after the other.
 * (The doc's τ also has the coordinator's ingest, max(1/BW, c_in + c_rx): below 1 Gbit/s the
 * link is the slower, as here.)
 */
export function predictServerWithCoordinator(x: StepInputs): StepPrediction {
  return predict(x, 0);
}

/**
 * The same model on the shaped bench's topology: nats-server on its own host, its link carrying
 * the W weights copies out and the W results in, and each chunk crossing a second link (the
 * coordinator's) after the server holds it whole. The W copies (and results) are taken as
 * interleaved on the server's link, so all workers start and finish together: an upper bound.
 */
export function predictServerOnItsOwnHost(x: StepInputs): StepPrediction {
  return predict(x, 1);
}

/**
 * The lower bound on the same topology: the server sends the W weights copies one after the
 * other, so worker i starts computing i copies in and the last worker's result crosses the two
 * links alone (the others' results went while it still received its weights or computed).
 */
export function predictServerOnItsOwnHostStaggered(x: StepInputs): StepPrediction {
  const bytesPerMs = x.linkBitsPerSecond / 8 / 1000 / x.wireOverhead;
  const weights = chunkSizes(x.weightsBytes, x.chunkBytes);
  const weightsMs = (weights[0] + x.workers * x.weightsBytes) / bytesPerMs;
  const gradientsMs = twoHopBytes(chunkSizes(x.resultBytes, x.chunkBytes), 1, 1) / bytesPerMs;
  const workerCpuMs = (x.weightsBytes * x.workerInNsPerByte + x.resultBytes * x.workerOutNsPerByte) / 1e6;
  return { weightsMs, gradientsMs, workerCpuMs, stepMs: x.latencyMs + x.coordinatorMs + weightsMs + x.computeMs + workerCpuMs + gradientsMs };
}
