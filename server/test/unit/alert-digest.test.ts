import { describe, expect, it } from 'vitest';
import type { AlertEvent, AlertSnapshot } from '../../src/alerts/alert-event.ts';
import { buildDigest, digestSubject, digestText } from '../../src/alerts/notifiers/alert-digest.ts';

function event(kind: AlertEvent['kind'], id: string, overrides: Partial<AlertSnapshot> = {}): AlertEvent {
  return {
    kind,
    alert: {
      id,
      type: 'failing',
      severity: 'warning',
      clientId: 'c',
      clientName: 'host',
      ownerId: null,
      path: null,
      message: `alert ${id}`,
      observed: 'failed',
      reference: 'succeeded',
      openedAt: '2026-12-01T10:00:00.000Z',
      resolvedAt: kind === 'resolved' ? '2026-12-01T11:00:00.000Z' : null,
      ...overrides,
    },
  };
}

const OPTIONS = { maxListed: 3, publicUrl: 'https://cairn.example' };

describe('alert digest', () => {
  it.each([
    { name: 'one opened alert', events: [event('opened', 'a', { severity: 'critical', type: 'mass_change' })], subject: '[Cairn] critical alert: mass change on host' },
    { name: 'one resolved server-wide alert', events: [event('resolved', 'a', { clientName: null, type: 'storage_filling' })], subject: '[Cairn] resolved: storage filling on the server' },
    { name: 'only opened', events: [event('opened', 'a'), event('opened', 'b')], subject: '[Cairn] 2 alerts: 2 opened' },
    { name: 'only resolved', events: [event('resolved', 'a'), event('resolved', 'b')], subject: '[Cairn] 2 alerts: 2 resolved' },
    {
      name: 'mixed, criticals counted among opened only',
      events: [event('opened', 'a', { severity: 'critical' }), event('resolved', 'b', { severity: 'critical' }), event('opened', 'c')],
      subject: '[Cairn] 3 alerts: 2 opened, 1 resolved (1 critical)',
    },
  ])('subject: $name', ({ events, subject }) => {
    expect(digestSubject(buildDigest(events, OPTIONS))).toBe(subject);
  });

  it('lists opened before resolved, critical first, and counts what the cap leaves out', () => {
    const digest = buildDigest(
      [event('resolved', 'r1'), event('opened', 'w1'), event('opened', 'i1', { severity: 'info' }), event('opened', 'c1', { severity: 'critical' }), event('opened', 'w2')],
      OPTIONS,
    );
    expect(digest.listed.map((e) => e.alert.id)).toEqual(['c1', 'w1', 'w2']);
    expect(digest).toMatchObject({ omitted: 2, opened: 4, resolved: 1, critical: 1 });
    expect(digestText(digest)).toContain('... and 2 more alerts, not listed here.');
    expect(digestText(buildDigest([event('opened', 'a')], { ...OPTIONS, maxListed: 0 }))).toContain('... and 1 more alert, not listed here.');
  });

  it('keeps line breaks from agents out of the subject and the alert lines', () => {
    const digest = buildDigest([event('opened', 'a', { clientName: 'evil\r\nBcc: victim@example.com', message: 'one\ntwo' })], OPTIONS);
    expect(digestSubject(digest)).toBe('[Cairn] warning alert: failing backups on evil Bcc: victim@example.com');
    expect(digestText(digest)).toContain('  one two\n');
  });

  it('says when it is a test', () => {
    const digest = buildDigest([event('opened', 'a')], { ...OPTIONS, test: true });
    expect(digestSubject(digest)).toBe('[Cairn] Test notification');
    expect(digestText(digest)).toMatch(/^This is a test notification from Cairn/);
  });
});
