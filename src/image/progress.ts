/**
 * Download progress on a terminal: one line per layer, rewritten in
 * place (at most ten times a second) while it downloads.  Off a
 * terminal it prints nothing but notes.
 */

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

export class Progress {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  #last = 0;
  #open = false;

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
    this.#tty = out.isTTY === true;
  }

  /** `what` has `bytes` of `total`. */
  update(what: string, bytes: number, total: number): void {
    if (!this.#tty) return;
    const now = Date.now();
    if (now - this.#last < 100 && bytes < total) return;
    this.#last = now;
    const percent = total ? Math.floor((bytes * 100) / total) : 100;
    this.#out.write(`\r\x1b[K${what}: ${megabytes(bytes)} / ${megabytes(total)} (${percent}%)`);
    this.#open = true;
  }

  /** `what` is complete. */
  done(what: string): void {
    if (!this.#tty) return;
    this.#out.write(`\r\x1b[K${what}: done\n`);
    this.#open = false;
  }

  /** A line of its own (on a terminal). */
  note(line: string): void {
    if (!this.#tty) return;
    this.#out.write(`${this.#open ? "\n" : ""}${line}\n`);
    this.#open = false;
  }
}
