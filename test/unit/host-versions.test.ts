// A remote worker's weights versions only move forward (worker/host.ts loadVersion): a
// task whose version's chunks are still being fetched when a newer version is published
// must not write its older weights under the newer version's tasks. And the shared
// weights buffer is a sequence lock (worker/pool.ts): a copy torn by a publish is refused.

import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../proto/codec.js';
import { loadVersion, type VersionedReplica } from '../../worker/host.js';
import { loadShared, publishShared, WRITING } from '../../worker/pool.js';

/** A replica whose pool records what was published, in order. */
function replica(): VersionedReplica & { published: [number, number][] } {
  const published: [number, number][] = [];
  let version = -1;
  return {
    published,
    pool: {
      get publishedVersion() {
        return version;
      },
      publish(params: Float32Array, v: number) {
        published.push([v, params[0]]);
        version = v;
      },
    },
    latest: null,
    fetching: new Map(),
  };
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('loadVersion', () => {
  it('publishes the broadcast version without fetching, and nothing when it is already published', async () => {
    const r = replica();
    r.latest = { version: 3, params: new Float32Array([3]) };
    let fetches = 0;
    const fetch = async () => (fetches++, new Float32Array([0]));
    await loadVersion(r, 3, fetch);
    await loadVersion(r, 3, fetch);
    expect(r.published).toEqual([[3, 3]]);
    expect(fetches).toBe(0);
  });

  it('fetches a missed version once for every task that waits for it', async () => {
    const r = replica();
    const chunks = deferred<Float32Array>();
    let fetches = 0;
    const fetch = () => (fetches++, chunks.promise);
    const tasks = [loadVersion(r, 5, fetch), loadVersion(r, 5, fetch)];
    chunks.resolve(new Float32Array([5]));
    await Promise.all(tasks);
    expect(fetches).toBe(1);
    expect(r.published).toEqual([[5, 5]]);
    expect(r.fetching.size).toBe(0);
  });

  it('a version older than the published one is refused, also when the newer one came while its chunks were fetched', async () => {
    const r = replica();
    const old = deferred<Float32Array>();
    // Task of version 7 waits for its chunks…
    const waiting = loadVersion(r, 7, () => old.promise);
    // …meanwhile version 8 is broadcast and its task loads it.
    r.latest = { version: 8, params: new Float32Array([8]) };
    await loadVersion(r, 8, async () => new Float32Array([0]));
    old.resolve(new Float32Array([7]));
    await expect(waiting).rejects.toThrow(ProtocolError);
    await expect(loadVersion(r, 7, async () => new Float32Array([7]))).rejects.toThrow(/version 7 is older than the replica's 8/);
    // The newer weights stay: nothing older was written after them.
    expect(r.published).toEqual([[8, 8]]);
  });
});

describe('the shared weights buffer (worker/pool.ts publishShared, loadShared)', () => {
  const word = () => {
    const w = new Int32Array(new SharedArrayBuffer(4));
    w[0] = -1;
    return w;
  };

  it('a load of the published version copies it whole', () => {
    const v = word();
    const weights = new Float32Array(new SharedArrayBuffer(16));
    publishShared(v, weights, new Float32Array([1, 2, 3, 4]), 4);
    const copy = new Float32Array(4);
    loadShared(v, 4, () => copy.set(weights));
    expect([...copy]).toEqual([1, 2, 3, 4]);
    expect(() => loadShared(v, 3, () => {})).toThrow(/holds version 4, task wants 3/);
  });

  it('a publish that overlaps a load fails the load, whether it has finished or is still writing at the check', () => {
    const v = word();
    const weights = new Float32Array(new SharedArrayBuffer(16));
    publishShared(v, weights, new Float32Array([1, 1, 1, 1]), 1);
    const copy = new Float32Array(4);
    // The copy reads half, a publish of version 2 happens, the copy reads the rest: torn.
    expect(() =>
      loadShared(v, 1, () => {
        copy.set(weights.subarray(0, 2), 0);
        publishShared(v, weights, new Float32Array([2, 2, 2, 2]), 2);
        copy.set(weights.subarray(2), 2);
      }),
    ).toThrow(/changed \(to version 2\) while version 1 was being loaded/);
    // A publish that starts during the copy and is still writing when the copy ends: the mark is seen.
    expect(() =>
      loadShared(v, 2, () => {
        Atomics.store(v, 0, WRITING);
      }),
    ).toThrow(/changed \(to a version being written\)/);
    expect(() => publishShared(v, weights, new Float32Array(3), 3)).toThrow(RangeError);
    expect(() => publishShared(v, weights, new Float32Array(4), -1)).toThrow(RangeError);
  });
});
