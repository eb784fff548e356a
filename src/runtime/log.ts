/**
 * runc's logging contract: `--log FILE` (default stderr), `--log-format
 * text|json`, `--debug`.  JSON records are single lines with level, msg
 * and time, because containerd and podman parse them.
 */
import { appendFileSync } from "node:fs";

export type LogFormat = "text" | "json";
export type Level = "debug" | "info" | "warn" | "error";

export interface LoggerOptions {
  file?: string;
  format: LogFormat;
  debug: boolean;
}

/** One log record, formatted as runc (logrus) formats it. */
export function formatRecord(format: LogFormat, level: Level, msg: string, time = new Date()): string {
  const stamp = time.toISOString().replace(/\.\d+Z$/, "Z");
  if (format === "json") return `${JSON.stringify({ level, msg, time: stamp })}\n`;
  const word = level === "warn" ? "warning" : level;
  return `time=${JSON.stringify(stamp)} level=${word} msg=${JSON.stringify(msg)}\n`;
}

export class Logger {
  readonly #options: LoggerOptions;

  constructor(options: LoggerOptions) {
    this.#options = options;
  }

  get toStderr(): boolean {
    return this.#options.file === undefined;
  }

  log(level: Level, msg: string): void {
    if (level === "debug" && !this.#options.debug) return;
    const line = formatRecord(this.#options.format, level, msg);
    if (this.#options.file === undefined) {
      process.stderr.write(line);
      return;
    }
    try {
      appendFileSync(this.#options.file, line);
    } catch {
      process.stderr.write(line);
    }
  }

  debug(msg: string): void {
    this.log("debug", msg);
  }

  warn(msg: string): void {
    this.log("warn", msg);
  }

  /**
   * A failure, reported once: to the log, and (when the log is a file) as
   * a plain line on stderr too, as runc's fatal() does.
   */
  fatal(msg: string): void {
    this.log("error", msg);
    if (!this.toStderr) process.stderr.write(`${msg}\n`);
  }
}

/** The process-wide logger the OCI face sets up before running a command. */
export let logger = new Logger({ format: "text", debug: false });

export function setLogger(next: Logger): void {
  logger = next;
}
