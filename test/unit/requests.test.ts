// Control requests of a running training (RunRequests): validated when asked, carried out
// by the loop between steps, and refused rather than left hanging once the run ends.

import { describe, expect, it } from 'vitest';
import { RunRequests } from '../../coordinator/requests.js';

describe('RunRequests', () => {
  it('refuses a worker count the run cannot take, with an error naming it', async () => {
    const local = new RunRequests(false);
    await expect(local.requestScale(0)).rejects.toThrow(new RangeError('workers 0 needs remote workers, and this run was started without --nats'));
    await expect(local.requestScale(1025)).rejects.toThrow('workers is 1025; allowed: an integer from 0 to 1024');
    await expect(local.requestScale(1.5)).rejects.toThrow('workers is 1.5; allowed: an integer from 0 to 1024');
    expect(local.takeScale()).toBeNull();
    const remote = new RunRequests(true);
    const zero = remote.requestScale(0);
    const taken = remote.takeScale()!;
    expect(taken.workers).toBe(0);
    taken.done(0);
    await expect(zero).resolves.toEqual({ workers: 0 });
  });

  it('a newer scale request supersedes the pending one', async () => {
    const r = new RunRequests(false);
    const first = r.requestScale(2);
    const second = r.requestScale(3);
    await expect(first).rejects.toThrow('superseded by a newer scale request');
    const taken = r.takeScale()!;
    expect(taken.workers).toBe(3);
    taken.done(3);
    await expect(second).resolves.toEqual({ workers: 3 });
    expect(r.takeScale()).toBeNull();
  });

  it('checkpoint requests get the next checkpoint written', async () => {
    const r = new RunRequests(false);
    expect(r.checkpointWanted).toBe(false);
    const a = r.requestCheckpoint();
    const b = r.requestCheckpoint();
    expect(r.checkpointWanted).toBe(true);
    r.checkpointSaved({ path: 'runs/x/checkpoint.pb', step: 7 });
    await expect(Promise.all([a, b])).resolves.toEqual([{ path: 'runs/x/checkpoint.pb', step: 7 }, { path: 'runs/x/checkpoint.pb', step: 7 }]);
    expect(r.checkpointWanted).toBe(false);
  });

  it('once the run ended, pending and later requests are refused (a server close would wait for them)', async () => {
    const r = new RunRequests(true);
    const scale = r.requestScale(2);
    const checkpoint = r.requestCheckpoint();
    r.end();
    await expect(scale).rejects.toThrow('the run ended');
    await expect(checkpoint).rejects.toThrow('the run ended');
    await expect(r.requestScale(1)).rejects.toThrow('the run ended');
    await expect(r.requestCheckpoint()).rejects.toThrow('the run ended');
  });
});
