/**
 * The TypeScript side of the monitor of detached containers
 * (native/monitor.c, which documents the monitor itself).
 *
 *   dokrust (Bun)                  dokrust-monitor             dokrust-exec
 *   -------------                  ---------------             ------------
 *   spawn: control pipe as stdin,
 *   the channel as fd 3      ───▶  fork; the first prints
 *   read its pid on stdout   ◀───  the daemon's pid and exits
 *                                  setsid, subreaper, log,
 *                                  attach.sock, pipes  ───────▶ spawn (fd 3 = channel)
 *   write the plan on the channel ──────────────────────────▶ read the plan
 *   reports 'P' 'E' 'T' ◀──────────────────────────────────── ...clone (DETACH)
 *   channel EOF (execve) ◀──────────────────────────────────── execve
 *   "PID\n" on the control pipe ─▶ the container is PID: reap
 *                                  it, log, exit file, cleanup
 *
 * A start that fails ends the control pipe without a pid: the monitor
 * then reaps what is left and exits, and Bun cleans up itself.
 *
 * The attach protocol (attach, wait) is framed both ways: u8 type, u32
 * length (little-endian), data.
 */
import { existsSync, readFileSync } from "node:fs";
import { DokrustError } from "../errors.ts";
import { encodePlan, type ExecutorReport, type Step } from "../plan/ops.ts";
import { executorPath, installDir, isBundled, reportReader, writeAll } from "../native/executor.ts";
import { processStartTime } from "./state.ts";

/** Frame types the monitor sends to attach clients. */
export const Frame = { STDOUT: 1, STDERR: 2, EXIT: 3 } as const;
/** Frame types attach clients send to the monitor. */
export const Input = { DATA: 0, RESIZE: 1, CLOSE: 2 } as const;

/** The monitor's channel to the executor, as Bun holds it. */
export interface MonitorHandle {
  /** The monitor daemon's pid and start time. */
  pid: number;
  startTime: string;
  /** Send the plan to the executor the monitor started. */
  sendPlan(steps: readonly Step[]): void;
  /** The executor's next report, or undefined once execve closed the channel. */
  next(): Promise<ExecutorReport | undefined>;
  /** The start succeeded: tell the monitor the container's pid. */
  confirm(pid: number): Promise<void>;
  /** The start failed: the monitor reaps what is left and exits. */
  abandon(): Promise<void>;
}

export interface MonitorOptions {
  /** The container's state directory. */
  dir: string;
  tty: boolean;
  /** Keep the container's stdin open (for attach). */
  interactive: boolean;
  /** Rotate container.log at this size. */
  logMaxBytes: number;
  /** Run when the container has exited (absolute program path first). */
  exitCommand: string[];
}

/** The top of dokrust's tree (where native/ and bin/ are). */

/** The built monitor: $DOKRUST_MONITOR, else native/build/dokrust-monitor. */
export function monitorPath(): string {
  const path = process.env.DOKRUST_MONITOR || `${installDir()}/native/build/dokrust-monitor`;
  if (!existsSync(path)) throw new DokrustError(`the monitor ${path} is missing: run \`npm run build\` (it needs a C compiler)`);
  return path;
}

/** The command line that runs this dokrust again (for the monitor's exit command). */
export function dokrustCommand(): string[] {
  if (isBundled()) return [process.execPath];
  return [`${installDir()}/bin/dokrust`];
}

/** Default size at which container.log rotates: $DOKRUST_LOG_MAX_SIZE bytes, or 10 MB. */
export function logMaxBytes(): number {
  const env = Number(process.env.DOKRUST_LOG_MAX_SIZE);
  return Number.isInteger(env) && env > 0 ? env : 10 << 20;
}

/** Start the monitor; resolves once its daemon is set up. */
export async function startMonitor(options: MonitorOptions): Promise<MonitorHandle> {
  const args = [monitorPath(), "-d", options.dir, "-x", executorPath(), "-c", "3", "-s", String(options.logMaxBytes)];
  if (options.tty) args.push("-t");
  if (options.interactive) args.push("-i");
  // The control channel is a socket pair of our own: Bun would close a
  // "pipe" stdin when the first monitor process exits.
  const { closeFd, socketPair } = await import("../native/libc.ts");
  const [control, theirs] = socketPair();
  let proc;
  try {
    proc = Bun.spawn([...args, "--", ...options.exitCommand], {
      stdio: [theirs, "pipe", "inherit", "pipe"],
      env: process.env,
    });
  } finally {
    closeFd(theirs);
  }
  const [out, status] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  const pid = Number(out.trim());
  if (status !== 0 || !(pid > 0)) {
    closeFd(control);
    throw new DokrustError(`start the monitor ${args[0]} for ${options.dir}: it exited with status ${status}`);
  }
  const channel = proc.stdio[3] as unknown as number;
  let open = true;
  const end = async (text: string) => {
    if (!open) return;
    open = false;
    try {
      if (text) writeAll(control, new TextEncoder().encode(text));
    } finally {
      closeFd(control);
    }
  };
  return {
    pid,
    startTime: processStartTime(pid) ?? "",
    sendPlan: (steps) => writeAll(channel, encodePlan(steps)),
    next: reportReader(channel),
    confirm: (containerPid) => end(`${containerPid}\n`),
    abandon: () => end(""),
  };
}


/** What the monitor recorded when the container ended. */
export interface ExitRecord {
  exitCode: number;
  signal: number;
  finishedAt: string;
}

/** The exit file of a container's directory, or undefined while it runs. */
export function readExit(dir: string): ExitRecord | undefined {
  try {
    return JSON.parse(readFileSync(`${dir}/exit`, "utf8")) as ExitRecord;
  } catch {
    return undefined;
  }
}

/** Whether a process (by pid and start time) still runs; a zombie does not. */
export function processRuns(pid: number | undefined, startTime: string | undefined): boolean {
  if (!pid || !(pid > 0)) return false;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[0] !== "Z" && fields[0] !== "X" && fields[19] === startTime;
}

/** Encode one frame for the monitor. */
export function frame(type: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, data.length, true);
  out.set(data, 5);
  return out;
}

/** Splits a byte stream into frames. */
export class FrameReader {
  #buffer = new Uint8Array(0);

  /** Add bytes; returns the frames now complete. */
  push(bytes: Uint8Array): Array<{ type: number; data: Uint8Array }> {
    const joined = new Uint8Array(this.#buffer.length + bytes.length);
    joined.set(this.#buffer);
    joined.set(bytes, this.#buffer.length);
    const frames: Array<{ type: number; data: Uint8Array }> = [];
    let at = 0;
    while (joined.length - at >= 5) {
      const len = new DataView(joined.buffer, at + 1, 4).getUint32(0, true);
      if (joined.length - at < 5 + len) break;
      frames.push({ type: joined[at]!, data: joined.slice(at + 5, at + 5 + len) });
      at += 5 + len;
    }
    this.#buffer = joined.slice(at);
    return frames;
  }
}

/** A connection to a container's attach.sock. */
export interface AttachConnection {
  /** Send a frame to the monitor. */
  send(type: number, data: Uint8Array): void;
  close(): void;
  /** Resolves with the container's exit code, or undefined when the connection ended without one. */
  readonly ended: Promise<number | undefined>;
}

/** Connect to the monitor; output frames go to `onOutput`. */
export async function connectAttach(dir: string, onOutput: (type: number, data: Uint8Array) => void): Promise<AttachConnection> {
  const path = `${dir}/attach.sock`;
  const reader = new FrameReader();
  let exitCode: number | undefined;
  let finish: (code: number | undefined) => void = () => {};
  const ended = new Promise<number | undefined>((resolve) => (finish = resolve));
  let socket;
  try {
    socket = await Bun.connect({
      unix: path,
      socket: {
        data(_s, bytes) {
          for (const f of reader.push(bytes)) {
            if (f.type === Frame.EXIT) exitCode = new DataView(f.data.buffer, f.data.byteOffset, 4).getInt32(0, true);
            else onOutput(f.type, f.data);
          }
        },
        close() {
          finish(exitCode);
        },
        error() {
          finish(exitCode);
        },
      },
    });
  } catch (err) {
    throw new DokrustError(`connect to ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const s = socket;
  return {
    send(type, data) {
      s.write(frame(type, data));
      s.flush();
    },
    close: () => s.end(),
    ended,
  };
}
