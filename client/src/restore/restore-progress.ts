import { formatBytes } from '@cairn/shared';

/**
 * Restore progress on stderr: one updating line on a terminal, a plain line
 * every few seconds otherwise (logs, CI).
 */
export class RestoreProgress {
  doneFiles = 0;
  doneBytes = 0;
  failed = 0;
  #lastDraw = 0;
  readonly #started = Date.now();

  private readonly out: NodeJS.WritableStream & { isTTY?: boolean };
  readonly totalFiles: number;
  readonly totalBytes: number;
  constructor(
    out: NodeJS.WritableStream & { isTTY?: boolean },
    totalFiles: number,
    totalBytes: number,
  ) {
    this.out = out;
    this.totalFiles = totalFiles;
    this.totalBytes = totalBytes;
  }

  line(): string {
    const pct = this.totalBytes > 0 ? Math.floor((100 * this.doneBytes) / this.totalBytes) : this.totalFiles > 0 ? Math.floor((100 * this.doneFiles) / this.totalFiles) : 100;
    const failed = this.failed > 0 ? `, ${this.failed} failed` : '';
    return `restoring: ${this.doneFiles}/${this.totalFiles} files, ${formatBytes(this.doneBytes)}/${formatBytes(this.totalBytes)} (${pct}%)${failed}`;
  }

  /** Called often; draws at most every 100 ms on a TTY, every 5 s otherwise. */
  update(): void {
    const now = Date.now();
    const interval = this.out.isTTY ? 100 : 5_000;
    if (now - this.#lastDraw < interval) return;
    this.#lastDraw = now;
    if (this.out.isTTY) this.out.write(`\r\x1b[K${this.line()}`);
    else this.out.write(`${this.line()}\n`);
  }

  /** A message on its own line, without garbling the progress line. */
  print(message: string): void {
    this.out.write(this.out.isTTY ? `\r\x1b[K${message}\n` : `${message}\n`);
    if (this.out.isTTY) this.#lastDraw = 0;
  }

  failure(path: string, error: string): void {
    this.print(`FAILED ${path}: ${error}`);
  }

  finish(): void {
    const seconds = ((Date.now() - this.#started) / 1000).toFixed(1);
    const text = `${this.line().replace('restoring:', 'restored:')} in ${seconds} s`;
    this.out.write(this.out.isTTY ? `\r\x1b[K${text}\n` : `${text}\n`);
  }
}
