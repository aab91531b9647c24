import { describe, expect, it } from 'vitest';
import { ByteBudget, byteBudgetFor } from '../../src/storage/byte-budget.ts';

/** Resolves on the next macrotask: every promise that could settle by now has. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('ByteBudget', () => {
  it('lets takes through up to its capacity and holds the next one until enough is released', async () => {
    const budget = new ByteBudget(100);
    await budget.take(60);
    await budget.take(40);
    let third = false;
    const waiting = budget.take(30).then(() => (third = true));
    await turn();
    expect(third).toBe(false);
    budget.release(20);
    await turn();
    expect(third).toBe(false);
    budget.release(20);
    await waiting;
    expect(budget.held).toBe(90);
  });

  it('serves waiters in arrival order: a small take does not pass a large one', async () => {
    const budget = new ByteBudget(100);
    await budget.take(90);
    const order: string[] = [];
    const large = budget.take(80).then(() => order.push('large'));
    const small = budget.take(5).then(() => order.push('small'));
    await turn();
    expect(order).toEqual([]);
    budget.release(90);
    await Promise.all([large, small]);
    expect(order).toEqual(['large', 'small']);
    expect(budget.held).toBe(85);
  });

  it('serves a take larger than the capacity alone, once nothing else is held', async () => {
    const budget = new ByteBudget(10);
    await budget.take(4);
    let big = false;
    const waiting = budget.take(25).then(() => (big = true));
    await turn();
    expect(big).toBe(false);
    budget.release(4);
    await waiting;
    expect(budget.held).toBe(25);
  });

  it('refuses to give back more than was taken, and a capacity that is not a positive integer', async () => {
    const budget = new ByteBudget(10);
    await budget.take(3);
    expect(() => budget.release(4)).toThrow(/more bytes than were taken/);
    expect(() => new ByteBudget(0)).toThrow(RangeError);
  });

  it('is one budget per owner', () => {
    const a = {};
    expect(byteBudgetFor(a, 10)).toBe(byteBudgetFor(a, 99));
    expect(byteBudgetFor({}, 10)).not.toBe(byteBudgetFor(a, 10));
  });
});
