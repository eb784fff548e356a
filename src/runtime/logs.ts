/**
 * Reading a detached container's log (written by native/monitor.c):
 * `container.log.1` (the rotated one) then `container.log`, one record a
 * line, as CRI writes them:
 *
 *   2026-12-04T16:00:00.000000000Z stdout F text
 *
 * F ends a line of output; P is a piece of one without its newline yet.
 * Following reads on through rotation: the file it has open stays
 * readable after the rename, so it reads that to its end and then opens
 * the new container.log.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync, statSync } from "node:fs";

/** One record of the log. */
export interface LogRecord {
  time: string;
  stream: "stdout" | "stderr";
  /** The line ends here (F), or continues in the next record (P). */
  full: boolean;
  text: string;
}

/** Parse one line of the log; undefined for a malformed one. */
export function parseRecord(line: string): LogRecord | undefined {
  const m = /^(\S+) (stdout|stderr) ([FP]) (.*)$/s.exec(line);
  if (!m) return undefined;
  return { time: m[1]!, stream: m[2] as "stdout" | "stderr", full: m[3] === "F", text: m[4]! };
}

export interface LogOptions {
  /** Show each line's time. */
  timestamps: boolean;
  /** Only the last N lines. */
  tail?: number;
}

/** Turns records back into output, the times in front of lines when asked. */
export class LogPrinter {
  #atLineStart = { stdout: true, stderr: true };
  readonly #timestamps: boolean;
  readonly #write: (stream: "stdout" | "stderr", text: string) => void;

  constructor(timestamps: boolean, write: (stream: "stdout" | "stderr", text: string) => void) {
    this.#timestamps = timestamps;
    this.#write = write;
  }

  print(r: LogRecord): void {
    const stamp = this.#timestamps && this.#atLineStart[r.stream] ? `${r.time} ` : "";
    this.#write(r.stream, `${stamp}${r.text}${r.full ? "\n" : ""}`);
    this.#atLineStart[r.stream] = r.full;
  }
}

/** The records of the whole text, with only the last `tail` lines when asked. */
export function selectRecords(text: string, tail: number | undefined): LogRecord[] {
  const records = text.split("\n").filter(Boolean).map(parseRecord).filter((r): r is LogRecord => r !== undefined);
  if (tail === undefined) return records;
  if (tail === 0) return [];
  // count lines from the end: a line is its P pieces plus the closing F
  let lines = 0;
  let at = records.length;
  while (at > 0) {
    const r = records[at - 1]!;
    if (r.full) {
      if (lines === tail) break;
      lines++;
    }
    at--;
  }
  return records.slice(at);
}

/** Reads a growing log file, following it across rotation. */
export class LogFollower {
  readonly #path: string;
  #fd = -1;
  #ino = 0;
  #rest = "";

  constructor(path: string) {
    this.#path = path;
  }

  /** Open at the end of what `text` covered (the initial read). */
  openAt(offset: number): void {
    try {
      this.#fd = openSync(this.#path, "r");
      this.#ino = fstatSync(this.#fd).ino;
      this.#skip(offset);
    } catch {
      this.#fd = -1;
    }
  }

  #skip(offset: number): void {
    const buf = Buffer.alloc(Math.min(offset, 1 << 20));
    let left = offset;
    while (left > 0) {
      const n = readSync(this.#fd, buf, 0, Math.min(left, buf.length), null);
      if (n <= 0) break;
      left -= n;
    }
  }

  /** Whatever complete records came since the last call. */
  poll(): LogRecord[] {
    const text = this.#readNew();
    if (this.#rotated()) {
      // what the old file still held, a file rotated out since (when
      // container.log.1 is not the old file), then the new file
      const last = this.#readNew();
      const oldIno = this.#ino;
      closeSync(this.#fd);
      this.#fd = -1;
      let between = "";
      try {
        if (statSync(`${this.#path}.1`).ino !== oldIno) between = readFileSync(`${this.#path}.1`, "utf8");
      } catch {
        // none
      }
      this.openAt(0);
      return this.#records(text + last + between + this.#readNew());
    }
    return this.#records(text);
  }

  #records(text: string): LogRecord[] {
    const all = this.#rest + text;
    const end = all.lastIndexOf("\n");
    this.#rest = all.slice(end + 1);
    return selectRecords(all.slice(0, end + 1), undefined);
  }

  #readNew(): string {
    if (this.#fd < 0) {
      this.openAt(0);
      if (this.#fd < 0) return "";
    }
    const chunks: Buffer[] = [];
    const buf = Buffer.alloc(65536);
    for (;;) {
      const n = readSync(this.#fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
    return Buffer.concat(chunks).toString("utf8");
  }

  #rotated(): boolean {
    if (this.#fd < 0) return false;
    try {
      return statSync(this.#path).ino !== this.#ino;
    } catch {
      return false;
    }
  }

  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }
}
