/**
 * Retention decisions, pure: which versions of one path a policy prunes.
 * Table-tested in test/unit/retention-policy.test.ts.
 *
 * A version is kept when it is current, or when it is among the newest
 * `versions` versions of its path and (when `days` is set) stopped being
 * current less than `days` days ago. So the current version of a file that
 * still exists is never pruned, and a deleted file's last version is kept
 * `days` days (forever without `days`). Times are the server's clock.
 */
export interface RetentionPolicy {
  /** Keep at most this many versions of a path, counting the current one (>= 1). */
  versions: number;
  /** Prune non-current versions that stopped being current this many days ago or more; null = no age limit. */
  days: number | null;
}

export interface VersionLifetime {
  id: number;
  validFrom: Date;
  /** null while the version is current. */
  validTo: Date | null;
}

const DAY_MS = 86_400_000;

/** The ids of `versions` (all versions of ONE path, any order) that `policy` prunes at `now`. */
export function versionsToPrune(versions: readonly VersionLifetime[], policy: RetentionPolicy, now: Date): number[] {
  // The current version counts as the newest whatever its valid_from says, so it always takes one of the N places.
  const newestFirst = [...versions].sort(
    (a, b) => Number(a.validTo !== null) - Number(b.validTo !== null) || b.validFrom.getTime() - a.validFrom.getTime() || b.id - a.id,
  );
  const cutoff = policy.days === null ? null : now.getTime() - policy.days * DAY_MS;
  const pruned: number[] = [];
  newestFirst.forEach((version, index) => {
    if (version.validTo === null) return;
    const beyondCount = index >= policy.versions;
    const tooOld = cutoff !== null && version.validTo.getTime() <= cutoff;
    if (beyondCount || tooOld) pruned.push(version.id);
  });
  return pruned;
}

/**
 * The policy that applies to a client: its own override when it sets
 * `retentionVersions` (its `retentionDays` then applies as is, null meaning
 * no age limit), else its owner's.
 */
export function effectiveRetentionPolicy(
  owner: { retentionVersions: number; retentionDays: number | null },
  client: { retentionVersions: number | null; retentionDays: number | null },
): RetentionPolicy {
  if (client.retentionVersions !== null) return { versions: client.retentionVersions, days: client.retentionDays };
  return { versions: owner.retentionVersions, days: owner.retentionDays };
}
