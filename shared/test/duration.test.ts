import { describe, expect, it } from 'vitest';
import { parseDuration } from '../src/duration.ts';

describe('parseDuration', () => {
  it('reads seconds, minutes, hours and days, with or without a unit', () => {
    expect(parseDuration('90')).toBe(90);
    expect(parseDuration('90s')).toBe(90);
    expect(parseDuration('30m')).toBe(1800);
    expect(parseDuration(' 1H ')).toBe(3600);
    expect(parseDuration('7d')).toBe(604_800);
  });

  it('refuses anything else', () => {
    for (const text of ['', 'soon', '1w', '-1h', '1.5h', '1 hour', '1h30m']) expect(parseDuration(text), text).toBeNull();
  });
});
