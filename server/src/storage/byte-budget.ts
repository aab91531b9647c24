/**
 * A count of bytes that may be held at once, shared by everything that takes
 * from it (decision 190): the upload requests of one server take the bytes
 * they have read but not yet put through their pack writer from one budget,
 * so the server's memory does not grow with the number of agents uploading
 * at the same time. Waiters are served in arrival order; a take larger than
 * the whole budget is served alone (when nothing else is held).
 */
export class ByteBudget {
  readonly capacity: number;
  #held = 0;
  readonly #waiting: { bytes: number; resolve: () => void }[] = [];

  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity <= 0) throw new RangeError(`capacity must be a positive integer, not ${capacity}`);
    this.capacity = capacity;
  }

  /** Bytes taken and not yet given back. */
  get held(): number {
    return this.#held;
  }

  /** Resolves once `bytes` are taken; the caller must `release` them exactly once. */
  async take(bytes: number): Promise<void> {
    if (this.#waiting.length === 0 && this.#fits(bytes)) {
      this.#held += bytes;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push({ bytes, resolve }));
  }

  release(bytes: number): void {
    if (bytes > this.#held) throw new Error(`released more bytes than were taken (${bytes - this.#held} too many)`);
    this.#held -= bytes;
    while (this.#waiting.length > 0 && this.#fits(this.#waiting[0]!.bytes)) {
      const next = this.#waiting.shift()!;
      this.#held += next.bytes;
      next.resolve();
    }
  }

  #fits(bytes: number): boolean {
    return this.#held === 0 || this.#held + bytes <= this.capacity;
  }
}

const budgets = new WeakMap<object, ByteBudget>();

/** The one budget of `owner` (a server's AppContext), made with `capacity` on first use. */
export function byteBudgetFor(owner: object, capacity: number): ByteBudget {
  let budget = budgets.get(owner);
  if (!budget) {
    budget = new ByteBudget(capacity);
    budgets.set(owner, budget);
  }
  return budget;
}
