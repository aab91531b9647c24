import { describe, expect, it } from 'vitest';
import { describeRunTrigger } from '../src/format.ts';

describe('describeRunTrigger', () => {
  it.each([
    ['schedule', 'scheduled'],
    ['manual', "started on the agent's page"],
    ['server', 'requested from the dashboard'],
    ['something-new', 'something-new'],
  ])('%s reads as "%s"', (trigger, words) => {
    expect(describeRunTrigger(trigger)).toBe(words);
  });
});
