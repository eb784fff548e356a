/**
 * Shared helpers for the integration tests: running dokrust as a
 * subprocess (bin/dokrust, a private state root, a timeout), scratch
 * copies of the fixtures, reading what a running container looks like
 * from the host, and the leak checker every test file installs with
 * `useLeakCheck()`.
 *
 * The machine is shared (other engineers run containers at the same
 * time), so every check is scoped to what this run created: its own state
 * root, its own temporary paths, the container ids that appeared in its
 * state root (watched with inotify), and its own descendant processes.
 * The test process makes itself a child subreaper, so a container or
 * executor that dokrust orphaned is reparented to it and still counts.
 */
import { afterAll, afterEach, beforeAll, beforeEach, expect, setDefaultTimeout } from "bun:test";
import { dlopen, FFIType } from "bun:ffi";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statSync,
  watch,
  type FSWatcher,
} from "node:fs";
import { resolve } from "node:path";

setDefaultTimeout(30_000);

/** The repository. */
export const REPO = resolve(import.meta.dir, "../..");
/** The launcher a user runs. */
export const BIN = `${REPO}/bin/dokrust`;
const CACHE = `${REPO}/test/fixtures/cache`;
/** The static busybox rootfs (read-only use: copy it to write). */
export const BUSYBOX = `${CACHE}/busybox`;
/** The Debian minbase rootfs (read-only use). */
export const DEBIAN = `${CACHE}/debian`;

/** One run of the suite: names every path it creates. */
export const RUN_ID = randomBytes(4).toString("hex");
/** Prefix of every temporary path this run creates. */
export const TMP_PREFIX = `/tmp/dokrust-test-${RUN_ID}`;

export const isRoot = process.getuid?.() === 0;
export const haveBusybox = existsSync(`${CACHE}/busybox.done`) && existsSync(`${BUSYBOX}/bin/busybox`);
export const haveDebian = existsSync(`${CACHE}/debian.done`) && existsSync(`${DEBIAN}/bin/bash`);

/** The fixtures a test file needs; the file is skipped without them. */
export const ready = isRoot && haveBusybox;

/** Arguments that run a shell script in the container. */
export function sh(script: string, shell = "/bin/sh"): string[] {
  return ["--", shell, "-c", script];
}

// ---------------------------------------------------------------------------
// The state root: private to each test file, removed after it.

let stateRootPath = "";

/** The state root the dokrust subprocesses of the current file use. */
export function stateRoot(): string {
  if (!stateRootPath) throw new Error("useLeakCheck() was not called in this test file");
  return stateRootPath;
}

// ---------------------------------------------------------------------------
// Running commands.

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export interface StartOptions {
  /** Text written to stdin, then closed; "pipe" leaves it open; default: /dev/null. */
  stdin?: string | Uint8Array;
  /** Kill the command (and its descendants) after this long. */
  timeoutMs?: number;
  cwd?: string;
  env?: Record<string, string>;
}

/** A command running in the background, its output collected as it comes. */
export interface Running {
  readonly pid: number;
  readonly proc: ReturnType<typeof Bun.spawn>;
  stdout(): string;
  stderr(): string;
  /** Resolve once stdout (or stderr) holds `what`; throws after timeoutMs. */
  waitFor(what: string | RegExp, timeoutMs?: number, stream?: "stdout" | "stderr"): Promise<void>;
  write(text: string | Uint8Array): void;
  closeStdin(): void;
  /** Exit code (128+N for signal N) and the whole output. */
  readonly result: Promise<Result>;
}

async function collect(stream: ReadableStream<Uint8Array>, sink: { text: string }): Promise<void> {
  const decoder = new TextDecoder();
  for await (const chunk of stream) sink.text += decoder.decode(chunk, { stream: true });
  sink.text += decoder.decode();
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGTERM: 15 };

/** Start any command; its output is collected and it is killed on timeout. */
export function start(argv: string[], options: StartOptions = {}): Running {
  const stdinMode = options.stdin === undefined ? "ignore" : "pipe";
  const proc = Bun.spawn(argv, {
    stdin: stdinMode,
    stdout: "pipe",
    stderr: "pipe",
    cwd: options.cwd ?? defaultCwd(),
    env: { ...process.env, ...options.env },
  });
  const out = { text: "" };
  const err = { text: "" };
  const reading = Promise.all([collect(proc.stdout, out), collect(proc.stderr, err)]);
  const stdin = proc.stdin;
  if (options.stdin !== undefined && options.stdin !== "pipe" && stdin) {
    stdin.write(options.stdin);
    void stdin.end();
  }
  const timeoutMs = options.timeoutMs ?? 20_000;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killTree(proc.pid);
  }, timeoutMs);
  const result = (async (): Promise<Result> => {
    const status = await proc.exited;
    clearTimeout(timer);
    await reading;
    const signal = proc.signalCode ? SIGNAL_NUMBERS[proc.signalCode] ?? 0 : 0;
    const res = { code: signal ? 128 + signal : status, stdout: out.text, stderr: err.text };
    if (timedOut) {
      throw new Error(`${argv.join(" ")}: timed out after ${timeoutMs} ms\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
    }
    return res;
  })();
  // A test that never awaits the result must not crash the run on a timeout.
  result.catch(() => {});
  return {
    pid: proc.pid,
    proc,
    stdout: () => out.text,
    stderr: () => err.text,
    async waitFor(what, ms = 10_000, stream = "stdout") {
      const deadline = Date.now() + ms;
      const holds = () => {
        const text = stream === "stdout" ? out.text : err.text;
        return typeof what === "string" ? text.includes(what) : what.test(text);
      };
      while (!holds()) {
        if (proc.exitCode !== null || proc.signalCode !== null) await reading;
        if (holds()) return;
        if (proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline) {
          throw new Error(`waiting for ${String(what)} on ${stream} of ${argv.join(" ")}: not seen\nstdout: ${out.text}\nstderr: ${err.text}`);
        }
        await Bun.sleep(10);
      }
    },
    write(text) {
      stdin?.write(text);
      void stdin?.flush();
    },
    closeStdin() {
      void stdin?.end();
    },
    result,
  };
}

/**
 * Start dokrust in the background with this file's state root.  Unless
 * the arguments choose a network, the container gets `--net none`
 * (loopback only): these tests are about everything but networking, and
 * the default bridge network is host-wide state (a bridge, an nftables
 * table) that test/integration/net.test.ts sets up under names of its own.
 */
export function startDokrust(args: string[], options: StartOptions = {}): Running {
  const end = args.indexOf("--");
  const own = end < 0 ? args : args.slice(0, end);
  const choosesNet = own.some((a) => /^(--net|--network|-k)(=|$)/.test(a));
  const net = choosesNet ? [] : ["--net", "none"];
  return start([BIN, ...net, ...args], { ...options, env: { DOKRUST_ROOT: stateRoot(), ...options.env } });
}

/** Run dokrust to the end. */
export function dokrust(args: string[], options: StartOptions = {}): Promise<Result> {
  return startDokrust(args, options).result;
}

/** Whether util-linux `script` is there to give a command a pty. */
export const haveScript = Bun.which("script") !== null;

/**
 * Run a shell command line on a fresh pseudo-terminal (util-linux
 * `script`), dokrust being `$DOKRUST` in it (with `--net none`, as
 * startDokrust() gives it).  Output comes back with the
 * terminal's \r\n line ends.
 */
export function startInPty(command: string, options: StartOptions = {}): Running {
  // $DOKRUST is expanded unquoted: two words, as startDokrust() adds them
  const env = { DOKRUST_ROOT: stateRoot(), DOKRUST: `${BIN} --net none`, TERM: "xterm", ...options.env };
  return start(["script", "-qec", command, "/dev/null"], { ...options, env });
}

/** A working directory whose parent has no rootfs (no ../rootfs default). */
function defaultCwd(): string {
  const dir = `${TMP_PREFIX}-cwd/a`;
  mkdirSync(dir, { recursive: true });
  return dir;
}

// ---------------------------------------------------------------------------
// Scratch paths.

let scratch: string[] = [];
let scratchCount = 0;

/** A fresh path under /tmp named for this run; removed after the test. */
export function tempPath(name: string): string {
  const path = `${TMP_PREFIX}-${name}-${++scratchCount}`;
  scratch.push(path);
  return path;
}

/** A fresh empty directory; removed after the test. */
export function tempDir(name: string): string {
  const path = tempPath(name);
  mkdirSync(path, { recursive: true });
  return path;
}

/** A copy of a fixture that a test may write into; removed after the test. */
export function fixtureCopy(fixture: string = BUSYBOX): string {
  const path = tempPath("rootfs");
  const cp = Bun.spawnSync(["cp", "-a", fixture, path]);
  if (cp.exitCode !== 0) throw new Error(`cp -a ${fixture} ${path}: ${cp.stderr.toString()}`);
  return path;
}

// ---------------------------------------------------------------------------
// Processes and cgroups seen from the host.

interface ProcInfo {
  pid: number;
  ppid: number;
  state: string;
}

function processes(): Map<number, ProcInfo> {
  const all = new Map<number, ProcInfo>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // comm may hold spaces and parentheses: the fields after it follow the last ')'.
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      all.set(Number(name), { pid: Number(name), state: rest[0] ?? "?", ppid: Number(rest[1]) });
    } catch {
      // gone meanwhile
    }
  }
  return all;
}

/** Every live descendant of `pid` (children, their children, ...). */
export function descendants(pid: number, all: Map<number, ProcInfo> = processes()): number[] {
  const children = new Map<number, number[]>();
  for (const p of all.values()) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const found: number[] = [];
  const queue = [...(children.get(pid) ?? [])];
  while (queue.length) {
    const next = queue.shift()!;
    found.push(next);
    queue.push(...(children.get(next) ?? []));
  }
  return found;
}

/** The pid a process has in its innermost pid namespace, or undefined. */
function innerPid(pid: number): { depth: number; inner: number } | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/^NSpid:\s*(.*)$/m)?.[1];
    if (!line) return undefined;
    const ids = line.trim().split(/\s+/).map(Number);
    return { depth: ids.length, inner: ids[ids.length - 1]! };
  } catch {
    return undefined;
  }
}

function killTree(pid: number): void {
  for (const p of [...descendants(pid), pid].reverse()) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // gone already
    }
  }
}

/** A container seen from the host. */
export interface Container {
  /** Host pid of the container's pid 1. */
  pid: number;
  /** The host directory of the container's cgroup in `controller`. */
  cgroupDir(controller: string): string;
}

/**
 * Wait for the container started by `running` (a dokrust, or a `script`
 * running dokrust) and return its pid 1 as the host sees it.
 */
export async function findContainer(running: Running, timeoutMs = 10_000): Promise<Container> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const pid of descendants(running.pid)) {
      const ns = innerPid(pid);
      if (ns && ns.depth > 1 && ns.inner === 1) return { pid, cgroupDir: (c) => cgroupDirOf(pid, c) };
    }
    if (Date.now() > deadline) {
      const tree = descendants(running.pid).map((p) => `${describeProcess(p)} NSpid ${JSON.stringify(innerPid(p))}`);
      throw new Error(`no container appeared under pid ${running.pid} (descendants: ${tree.join("; ") || "none"})\nstderr: ${running.stderr()}`);
    }
    await Bun.sleep(10);
  }
}

interface CgroupMount {
  point: string;
  controllers: string[];
  v2: boolean;
}

function cgroupMounts(): CgroupMount[] {
  return parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"))
    .filter((m) => m.fstype === "cgroup" || m.fstype === "cgroup2")
    .map((m) => ({ point: m.point, controllers: m.superOptions.split(","), v2: m.fstype === "cgroup2" }));
}

/** Whether `controller` runs on a v1 hierarchy on this host. */
export function isV1(controller: string): boolean {
  return cgroupMounts().some((m) => !m.v2 && m.controllers.includes(controller));
}

/**
 * The host directory of `pid`'s cgroup in `controller`: read from
 * /proc/<pid>/cgroup, which shows paths relative to the reader's (the
 * host's) cgroup namespace, whatever namespace the process is in.
 */
export function cgroupDirOf(pid: number, controller: string): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, "utf8").trim().split("\n");
  const mounts = cgroupMounts();
  for (const line of lines) {
    const [, list = "", path = ""] = line.split(/:(.*?):/);
    if (list.split(",").includes(controller)) {
      const mount = mounts.find((m) => !m.v2 && m.controllers.includes(controller));
      if (mount) return `${mount.point}${path}`;
    }
  }
  const unified = mounts.find((m) => m.v2);
  const v2Path = lines.find((l) => l.startsWith("0::"))?.slice(3);
  if (unified && v2Path !== undefined) return `${unified.point}${v2Path}`;
  throw new Error(`pid ${pid} has no ${controller} cgroup`);
}

/** Every cgroup directory named dokrust* in any hierarchy of the host. */
export function dokrustCgroups(): string[] {
  const found: string[] = [];
  for (const m of cgroupMounts()) {
    try {
      for (const name of readdirSync(m.point)) if (name.startsWith("dokrust")) found.push(`${m.point}/${name}`);
    } catch {
      // not readable
    }
  }
  return found;
}

// ---------------------------------------------------------------------------
// mountinfo.

export interface MountEntry {
  id: number;
  parent: number;
  dev: string;
  /** The mount's root inside its file system (field 4). */
  root: string;
  /** The mount point (field 5). */
  point: string;
  options: string[];
  fstype: string;
  source: string;
  superOptions: string;
}

const unescapeOctal = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Parse /proc/<pid>/mountinfo text. */
export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const f = line.slice(0, sep).split(" ");
    const [fstype = "", source = "", superOptions = ""] = line.slice(sep + 3).split(" ");
    entries.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      dev: f[2] ?? "",
      root: unescapeOctal(f[3] ?? ""),
      point: unescapeOctal(f[4] ?? ""),
      options: (f[5] ?? "").split(","),
      fstype,
      source,
      superOptions,
    });
  }
  return entries;
}

// ---------------------------------------------------------------------------
// The leak checker.

let prctl: ((option: number, arg: number) => number) | undefined;

const PR_SET_CHILD_SUBREAPER = 36;

/**
 * Orphans of our descendants come back to us (PR_SET_CHILD_SUBREAPER)
 * while `on`.  Only for the files that use this checker: bun runs every
 * test file in one process, and an OCI `create` leaves its container to
 * be reparented to init, which other files rely on.
 */
function subreaper(on: boolean): void {
  if (!prctl) {
    const lib = dlopen("libc.so.6", {
      prctl: { args: [FFIType.i32, FFIType.u64, FFIType.u64, FFIType.u64, FFIType.u64], returns: FFIType.i32 },
    });
    prctl = (option, arg) => lib.symbols.prctl(option, arg, 0, 0, 0);
  }
  if (prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0) !== 0) throw new Error("prctl(PR_SET_CHILD_SUBREAPER) failed");
}

interface Snapshot {
  pids: Set<number>;
  mounts: string[];
  fixtures: string;
}

/** Container ids created in the state root since the last test began. */
let seenIds = new Set<string>();
let watcher: FSWatcher | undefined;
let before: Snapshot | undefined;

function ourMountLines(): string[] {
  const marks = [stateRootPath, TMP_PREFIX, CACHE, ...[...seenIds].map((id) => `dokrust-${id}`)].filter(Boolean);
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((line) => marks.some((m) => line.includes(m)))
    .map((line) => line.split(" ").slice(3).join(" "));
}

/** Modification times of the fixture files a container could touch. */
function fixtureStamp(): string {
  const paths: string[] = [];
  for (const root of [BUSYBOX, DEBIAN]) {
    for (const p of ["", "/etc", "/tmp", "/root", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev", "/proc", "/sys"]) {
      paths.push(`${root}${p}`);
    }
  }
  return paths
    .map((p) => {
      try {
        const st = statSync(p);
        return `${p} ${st.mtimeMs} ${st.size}`;
      } catch {
        return `${p} -`;
      }
    })
    .join("\n");
}

function snapshot(): Snapshot {
  return { pids: new Set(processes().keys()), mounts: ourMountLines(), fixtures: fixtureStamp() };
}

/** The pids of our leaked processes: new descendants, and what sits in our cgroups. */
function leakedProcesses(base: Snapshot): number[] {
  const all = processes();
  const ours = new Set(descendants(process.pid, all).filter((p) => !base.pids.has(p)));
  for (const id of seenIds) {
    for (const dir of dokrustCgroups().filter((d) => d.endsWith(`/dokrust-${id}`))) for (const p of readPids(dir)) ours.add(p);
  }
  return [...ours].filter((p) => all.has(p));
}

async function settle<T>(probe: () => T[], ms: number): Promise<T[]> {
  const deadline = Date.now() + ms;
  let found = probe();
  while (found.length && Date.now() < deadline) {
    await Bun.sleep(20);
    found = probe();
  }
  return found;
}

function describeProcess(pid: number): string {
  try {
    return `${pid} ${readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim() || "(zombie)"}`;
  } catch {
    return `${pid} (gone)`;
  }
}

/** What the state root holds but its hidden files (the root's locks). */
function containerEntries(): string[] {
  return readdirSync(stateRootPath).filter((e) => !e.startsWith("."));
}

/** Everything this test left behind, one line each. */
async function leaks(base: Snapshot): Promise<string[]> {
  const problems: string[] = [];
  // Per-container state; the root's own lock files (.names.lock) stay by design.
  for (const entry of containerEntries()) problems.push(`state root ${stateRootPath} still holds ${entry}`);
  const cgroups = await settle(
    () => [...seenIds].flatMap((id) => dokrustCgroups().filter((d) => d.endsWith(`/dokrust-${id}`))),
    500,
  );
  for (const dir of cgroups) problems.push(`cgroup ${dir} was not removed`);
  // the host end of a container's veth pair: dk + 12 hex digits of its id
  for (const id of seenIds) {
    const link = `dk${id.slice(0, 12)}`;
    if (existsSync(`/sys/class/net/${link}`)) problems.push(`network link ${link} was not removed`);
  }
  // Other dokrust* cgroups are not looked at: other engineers run dokrust
  // on this machine at the same time, and theirs come and go.
  const mounts = ourMountLines().filter((m) => !base.mounts.includes(m));
  for (const m of mounts) problems.push(`host mount left behind: ${m}`);
  const procs = await settle(() => leakedProcesses(base), 500);
  for (const p of procs) problems.push(`process left behind: ${describeProcess(p)}`);
  if (fixtureStamp() !== base.fixtures) problems.push("a cached fixture was modified (use fixtureCopy() to write)");
  return problems;
}

function readPids(cgroupDir: string): number[] {
  try {
    return readFileSync(`${cgroupDir}/cgroup.procs`, "utf8").split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Clean what a failed test left, so that the next test starts clean. */
async function cleanUp(base: Snapshot): Promise<void> {
  for (const p of leakedProcesses(base)) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // gone
    }
  }
  for (const id of seenIds) {
    for (const dir of dokrustCgroups().filter((d) => d.endsWith(`/dokrust-${id}`))) {
      // the kernel frees a cgroup a moment after its last process is reaped
      for (let i = 0; i < 50 && existsSync(dir); i++) {
        try {
          rmdirSync(dir);
        } catch {
          await Bun.sleep(10);
        }
      }
    }
  }
  for (const entry of containerEntries()) rmSync(`${stateRootPath}/${entry}`, { recursive: true, force: true });
}

function removeScratch(): void {
  const mounted = ourMountLines();
  for (const path of scratch) {
    // Never delete through a mount that leaked into the host: it would
    // delete the mounted directory's files.
    if (mounted.some((m) => m.includes(path))) continue;
    rmSync(path, { recursive: true, force: true });
  }
  scratch = [];
}

/**
 * Install the per-file set-up and the per-test leak check: a private
 * state root, watched for the container ids dokrust creates in it, and
 * after each test the assertion that no state, cgroup, host mount or
 * process was left behind and that the cached fixtures are untouched.
 */
export function useLeakCheck(): void {
  beforeAll(() => {
    if (!ready) return;
    subreaper(true);
    stateRootPath = `/run/dokrust-test-${RUN_ID}-${randomBytes(3).toString("hex")}`;
    mkdirSync(stateRootPath, { recursive: true, mode: 0o700 });
    watcher = watch(stateRootPath, (_event, name) => {
      if (typeof name === "string" && /^[0-9a-f]{16,}$/.test(name)) seenIds.add(name);
    });
  });
  beforeEach(() => {
    if (!ready) return;
    seenIds = new Set();
    before = snapshot();
  });
  afterEach(async () => {
    if (!ready || !before) return;
    // Let the watcher deliver the last events before they are used.
    await Bun.sleep(5);
    const base = before;
    before = undefined;
    let problems: string[];
    try {
      problems = await leaks(base);
    } finally {
      await cleanUp(base);
      removeScratch();
    }
    expect(problems).toEqual([]);
  });
  afterAll(() => {
    if (!ready) return;
    subreaper(false);
    watcher?.close();
    rmSync(stateRootPath, { recursive: true, force: true });
    rmSync(`${TMP_PREFIX}-cwd`, { recursive: true, force: true });
    stateRootPath = "";
  });
}

/** CapEff (and the others) of /proc/<pid>/status text, as numbers. */
export function capabilities(statusText: string): Record<string, bigint> {
  const caps: Record<string, bigint> = {};
  for (const m of statusText.matchAll(/^(Cap\w+):\s*([0-9a-f]+)$/gm)) caps[m[1]!] = BigInt(`0x${m[2]}`);
  return caps;
}

/** The host's namespace of a kind, as "type:[inode]". */
export function hostNamespace(kind: string): string {
  return readlinkSync(`/proc/self/ns/${kind}`);
}
