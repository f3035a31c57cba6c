// The local pool's shared gradient slots (coordinator/pool.ts GradSlots): an attempt
// borrows one; a settled slot keeps its step's gradient until a task of another step
// takes it; a failed attempt's slot is never lent again.

import { describe, expect, it } from 'vitest';
import { GradSlots } from '../../coordinator/pool.js';

describe('GradSlots', () => {
  it('lends shared memory of the parameter count', () => {
    const slots = new GradSlots(5);
    const s = slots.take(0);
    expect(s.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(s.buffer.byteLength).toBe(20);
  });

  it('never lends a slot twice at once, nor one that holds a result of the same step', () => {
    const slots = new GradSlots(3);
    const a = slots.take(4);
    const b = slots.take(4);
    expect(b).not.toBe(a);
    slots.settle(a);
    const c = slots.take(4); // a holds step 4's result: still being reduced
    expect(c).not.toBe(a);
    expect(c).not.toBe(b);
    expect(slots.count).toBe(3);
  });

  it('recycles the slots of an earlier step for the next one', () => {
    const slots = new GradSlots(3);
    const step0 = [slots.take(0), slots.take(0)];
    step0.forEach((s) => slots.settle(s));
    const step1 = [slots.take(1), slots.take(1)];
    expect(new Set([...step0, ...step1]).size).toBe(2);
    expect(slots.count).toBe(2);
  });

  it('drops a failed attempt’s slot: it is neither counted nor lent again', () => {
    const slots = new GradSlots(3);
    const a = slots.take(0);
    slots.drop(a);
    expect(slots.count).toBe(0);
    const b = slots.take(1);
    expect(b).not.toBe(a);
    expect(b.buffer).not.toBe(a.buffer);
  });
});
