/**
 * What the load, fault and bad-input suites share: a session over a
 * private state root that runs both faces (the OCI face with `--root`,
 * the dokrust face with $DOKRUST_ROOT), a pool that runs jobs 4 at a
 * time, a seeded PRNG, and a leak check over everything the session
 * could have left: state directories, cgroup directories (every
 * hierarchy), host mounts, processes, network links and nftables rules.
 *
 * These suites kill dokrust on purpose, so the session makes the test
 * process a child subreaper (an orphaned executor, monitor or container
 * comes back to it and can be counted) and reaps the zombies among its
 * children that Bun did not spawn (Bun reaps only its own).  The OCI
 * face's containers are not tied to the test's lifetime either way: they
 * are counted through their cgroups and their root directories.
 *
 * DOKRUST_TEST_RUNTIME=runc runs the OCI half against runc.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";
import { randomBytes } from "node:crypto";
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import { defaultSpec } from "../../src/spec/defaults.ts";
import type { Spec } from "../../src/spec/types.ts";

export const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
export const BIN = `${REPO}/bin/dokrust`;
export const BUSYBOX = `${REPO}/test/fixtures/cache/busybox`;
export const DEBIAN = `${REPO}/test/fixtures/cache/debian`;
export const IS_RUNC = process.env.DOKRUST_TEST_RUNTIME === "runc";
const OCI_RUNTIME = IS_RUNC ? "/usr/sbin/runc" : BIN;
/** The long versions (DOKRUST_LONG=1): hundreds of cycles instead of tens. */
export const LONG = !!process.env.DOKRUST_LONG;
export const ready = process.getuid?.() === 0 && existsSync(`${BUSYBOX}/bin/busybox`);

const libc = dlopen("libc.so.6", {
  prctl: { args: [FFIType.i32, FFIType.u64, FFIType.u64, FFIType.u64, FFIType.u64], returns: FFIType.i32 },
  waitpid: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
});
const PR_SET_CHILD_SUBREAPER = 36;
const WNOHANG = 1;

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** A seeded PRNG, so that a failing run can be replayed (shared with the fuzzer). */
export { prng } from "../corpus/fuzz.ts";

/** Run `jobs` with at most `width` at a time; resolves once all are done (rejects with the first error). */
export async function pool<T>(jobs: Array<() => Promise<T>>, width = 4): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, jobs.length) }, worker));
  return out;
}

interface Proc {
  pid: number;
  ppid: number;
  state: string;
}

function processes(): Map<number, Proc> {
  const all = new Map<number, Proc>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      all.set(Number(name), { pid: Number(name), ppid: Number(rest[1]), state: rest[0] ?? "?" });
    } catch {
      // gone meanwhile
    }
  }
  return all;
}

/** Live descendants of `pid`. */
export function descendants(pid: number, all = processes()): number[] {
  const children = new Map<number, number[]>();
  for (const p of all.values()) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const found: number[] = [];
  const queue = [...(children.get(pid) ?? [])];
  while (queue.length) {
    const p = queue.shift()!;
    found.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return found;
}

/** The number of open fds of a process. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

function describe(pid: number): string {
  try {
    return `${pid} ${readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim() || "(zombie)"}`;
  } catch {
    return `${pid} (gone)`;
  }
}

async function settle<T>(probe: () => T[], ms: number): Promise<T[]> {
  const deadline = Date.now() + ms;
  let found = probe();
  while (found.length && Date.now() < deadline) {
    await Bun.sleep(25);
    found = probe();
  }
  return found;
}

/** Every cgroup hierarchy mounted under /sys/fs/cgroup. */
function hierarchies(): string[] {
  return readdirSync("/sys/fs/cgroup").map((h) => `/sys/fs/cgroup/${h}`).filter((d) => existsSync(`${d}/cgroup.procs`));
}

/** A session of one test file. */
export class StressSession {
  readonly root = `/run/dokrust-test-${randomBytes(5).toString("hex")}`;
  /** Container ids (either face) that appeared in the state root. */
  readonly seen = new Set<string>();
  readonly #spawned = new Set<number>();
  readonly #paths: string[] = [];
  #watcher: FSWatcher | undefined;
  #basePids = new Set<number>();
  #reaper: ReturnType<typeof setInterval> | undefined;

  setUp(): void {
    if (libc.symbols.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) !== 0) throw new Error("prctl(PR_SET_CHILD_SUBREAPER) failed");
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    this.#watcher = watch(this.root, (_e, name) => {
      if (typeof name === "string" && !name.startsWith(".") && !name.includes(".tmp")) this.seen.add(name);
    });
    this.#basePids = new Set(descendants(process.pid));
    // Reap orphans as they die, as init would: a container's pid 1 that
    // ends waits in the kernel until every process of its namespace is
    // reaped, and an exec'd process whose executor was killed comes to us.
    this.#reaper = setInterval(() => this.reap(), 20);
  }

  async tearDown(): Promise<void> {
    this.#watcher?.close();
    clearInterval(this.#reaper);
    for (const id of readdirSync(this.root).filter((n) => !n.startsWith("."))) await this.oci(["delete", "--force", id]);
    this.reap();
    libc.symbols.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
    rmSync(this.root, { recursive: true, force: true });
    for (const p of this.#paths) rmSync(p, { recursive: true, force: true });
  }

  /** A fresh temporary directory, removed at tear-down. */
  tempDir(name: string): string {
    const dir = mkdtempSync(`/tmp/dokrust-test-${name}-`);
    this.#paths.push(dir);
    return dir;
  }

  /**
   * A bundle: a copy of a rootfs and config.json from defaultSpec() with
   * the process `args` and a patch.  Its cgroupsPath is left out, so each
   * container gets /dokrust/<id>; many containers may share one bundle.
   */
  bundle(args: string[], patch: (spec: Spec, dir: string) => void = () => {}, rootfs = BUSYBOX): string {
    const dir = this.tempDir("bundle");
    cpSync(rootfs, `${dir}/rootfs`, { recursive: true, verbatimSymlinks: true });
    const spec = defaultSpec();
    spec.process!.terminal = false;
    spec.process!.args = args;
    patch(spec, dir);
    writeFileSync(`${dir}/config.json`, JSON.stringify(spec));
    return dir;
  }

  /** A fresh OCI container id. */
  id(): string {
    return `dokrust-test-${randomBytes(6).toString("hex")}`;
  }

  /**
   * Run a command to its end; output through files (a created container
   * inherits the runtime's stdio and would hold a pipe open).  `onStart`
   * sees the pid (to kill it, for instance).
   */
  async run(argv: string[], options: { env?: Record<string, string>; onStart?: (pid: number) => void; timeoutMs?: number } = {}): Promise<Result> {
    const dir = mkdtempSync("/tmp/dokrust-test-out-");
    const out = openSync(`${dir}/stdout`, "w");
    const err = openSync(`${dir}/stderr`, "w");
    try {
      const proc = Bun.spawn(argv, { cwd: "/", stdio: ["ignore", out, err], env: { ...process.env, ...options.env } });
      this.#spawned.add(proc.pid);
      options.onStart?.(proc.pid);
      const timer = setTimeout(() => proc.kill(9), options.timeoutMs ?? 30_000);
      const code = await proc.exited;
      clearTimeout(timer);
      this.#spawned.delete(proc.pid);
      const status = proc.signalCode ? 128 + (proc.signalCode === "SIGKILL" ? 9 : 15) : code;
      return { code: status, stdout: readFileSync(`${dir}/stdout`, "utf8"), stderr: readFileSync(`${dir}/stderr`, "utf8") };
    } finally {
      closeSync(out);
      closeSync(err);
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** The OCI face (or runc) with this session's --root. */
  oci(args: string[], options: Parameters<StressSession["run"]>[1] = {}): Promise<Result> {
    return this.run([OCI_RUNTIME, "--root", this.root, ...args], options);
  }

  /** The dokrust face with this session's state root. */
  dokrust(args: string[], options: Parameters<StressSession["run"]>[1] = {}): Promise<Result> {
    return this.run([BIN, ...args], { ...options, env: { DOKRUST_ROOT: this.root, ...options.env } });
  }

  /** Run and expect exit status 0. */
  async ok(result: Promise<Result>, what: string): Promise<string> {
    const r = await result;
    if (r.code !== 0) throw new Error(`${what}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  }

  /**
   * Reap the zombies among our children that Bun did not spawn (orphans
   * this subreaper inherited), by pid, never with waitpid(-1).
   */
  reap(): void {
    const status = new Int32Array(1);
    for (const p of processes().values()) {
      if (p.ppid === process.pid && p.state === "Z" && !this.#spawned.has(p.pid)) libc.symbols.waitpid(p.pid, ptr(status), WNOHANG);
    }
  }

  /** Processes of ours that should not be there (orphans included). */
  #strayProcesses(): number[] {
    this.reap();
    const all = processes();
    const ours = new Set(descendants(process.pid, all).filter((p) => !this.#basePids.has(p)));
    for (const dir of this.#cgroupDirs()) {
      try {
        for (const p of readFileSync(`${dir}/cgroup.procs`, "utf8").split("\n").filter(Boolean)) ours.add(Number(p));
      } catch {
        // removed meanwhile
      }
    }
    // a container whose root is one of our bundles, wherever it hangs
    for (const p of all.keys()) {
      try {
        const root = readlinkSync(`/proc/${p}/root`);
        if (this.#paths.some((b) => root.startsWith(b))) ours.add(p);
      } catch {
        // gone, or a kernel thread
      }
    }
    return [...ours].filter((p) => all.has(p) && all.get(p)!.state !== "Z");
  }

  /** The cgroup directories of the containers this session saw. */
  #cgroupDirs(): string[] {
    const found: string[] = [];
    for (const h of hierarchies()) {
      for (const id of this.seen) {
        for (const d of [`${h}/dokrust/${id}`, `${h}/dokrust-${id}`]) if (existsSync(d)) found.push(d);
      }
    }
    return found;
  }

  /** Everything left behind, one line each (empty: nothing leaked). */
  async leaks(): Promise<string[]> {
    await Bun.sleep(10); // let the watcher deliver its last events
    const problems: string[] = [];
    for (const e of readdirSync(this.root).filter((n) => !n.startsWith("."))) problems.push(`state directory ${this.root}/${e}`);
    for (const d of await settle(() => this.#cgroupDirs(), 1000)) problems.push(`cgroup ${d}`);
    const marks = [this.root, ...this.#paths, ...[...this.seen].map((id) => `dokrust-${id}`), ...this.seen];
    for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
      if (line && marks.some((m) => line.includes(m))) problems.push(`host mount ${line.split(" ").slice(3, 5).join(" ")}`);
    }
    for (const p of await settle(() => this.#strayProcesses(), 2000)) problems.push(`process ${describe(p)}`);
    for (const id of this.seen) {
      if (/^[0-9a-f]{64}$/.test(id) && existsSync(`/sys/class/net/dk${id.slice(0, 12)}`)) problems.push(`network link dk${id.slice(0, 12)}`);
    }
    problems.push(...this.#nftRules());
    return problems;
  }

  /** nftables rules naming one of our containers (the bridge network tags them with the id). */
  #nftRules(): string[] {
    if (!Bun.which("nft")) return [];
    const r = Bun.spawnSync(["nft", "list", "ruleset"]);
    const text = r.stdout.toString();
    const out: string[] = [];
    for (const id of this.seen) {
      const short = /^[0-9a-f]{64}$/.test(id) ? id.slice(0, 12) : id;
      if (text.includes(short)) out.push(`nft rule naming ${short}`);
    }
    return out;
  }
}
