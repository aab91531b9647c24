/**
 * A duration as a person types it: "90s", "30m", "1h", "7d" or plain
 * seconds. Used by the dashboard's and the CLI's download-link expiry.
 */
export function parseDuration(text: string): number | null {
  const match = /^\s*(\d{1,9})\s*([smhd]?)\s*$/i.exec(text);
  if (!match) return null;
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[match[2]!.toLowerCase() as '' | 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}
