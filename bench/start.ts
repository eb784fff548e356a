/**
 * Start-time benchmark: `/bin/true` in the busybox rootfs, started by
 * dokrust and by runc (`runc run` on an equivalent bundle), alternately in
 * one run, so that both see the same machine state.  Not a timed test: it
 * prints numbers, it asserts nothing.  See docs/BENCHMARKS.md.
 *
 *   bun bench/start.ts [--runs N] [--warmup N] [--concurrency C] [--rounds R]
 *                      [--gap MS] [--source] [--bridge] [--compare PATH]...
 *                      [--dokrust PATH] [--runc PATH]
 *
 *   --runs N         runs per runtime (default 40; 50 with --concurrency)
 *   --warmup N       untimed runs of each first (default 3)
 *   --concurrency C  start C containers at a time and time whole batches of
 *                    N runs (wall clock), R rounds per runtime (default 3)
 *   --source         also time dokrust from its TypeScript sources
 *                    (DOKRUST_NO_BUNDLE=1), to compare with the bundle
 *   --bridge         also time dokrust with its default network (a bridge
 *                    with NAT); the others run with --net none, which is
 *                    what the bundle has (a network namespace with lo only)
 *   --compare PATH   also time the dokrust launcher at PATH, e.g. another
 *                    checkout's bin/dokrust (repeatable)
 *   --gap MS         pause before each timed run (default 0), so that each
 *                    start finds the kernel idle rather than just after
 *                    the previous container (see docs/BENCHMARKS.md)
 *   --dokrust PATH   the dokrust launcher to time (default: this tree's)
 *   --runc PATH      the runc to time (default: runc on the PATH)
 *
 * Wall time is spawn to exit, with performance.now().  CPU is user +
 * system time from the rusage of the waited-for process, which takes in
 * the children it reaped (the whole tree).  Peak memory is measured apart,
 * after the timed runs, with `/usr/bin/time -f %M` (the max RSS of the
 * largest process of the tree): Bun's own rusage figure is no use here,
 * because a child it spawns starts out charged with Bun's resident set.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { parseArgs } from "node:util";

const TOP = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const FIXTURE = `${TOP}/test/fixtures/cache/busybox`;

interface Options {
  runs: number;
  warmup: number;
  concurrency: number;
  rounds: number;
  gap: number;
  source: boolean;
  bridge: boolean;
  compare: string[];
  dokrust: string;
  runc: string;
}

/** One timed start. */
interface Sample {
  ms: number;
  cpuMs: number;
}

const TIME = "/usr/bin/time";
const MEMORY_RUNS = 5;

/** A way of starting the container: a name and the argv of run n. */
interface Contender {
  name: string;
  argv: (n: number) => string[];
  env?: Record<string, string>;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: "string" },
      warmup: { type: "string" },
      concurrency: { type: "string" },
      rounds: { type: "string" },
      gap: { type: "string" },
      source: { type: "boolean" },
      bridge: { type: "boolean" },
      compare: { type: "string", multiple: true },
      dokrust: { type: "string" },
      runc: { type: "string" },
    },
  });
  const int = (v: string | undefined, fallback: number, name: string): number => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} ${v}: not a whole number`);
    return n;
  };
  const concurrency = int(values.concurrency, 1, "concurrency") || 1;
  return {
    runs: int(values.runs, concurrency > 1 ? 50 : 40, "runs") || 1,
    warmup: int(values.warmup, 3, "warmup"),
    concurrency,
    rounds: int(values.rounds, 3, "rounds") || 1,
    gap: int(values.gap, 0, "gap"),
    source: values.source ?? false,
    bridge: values.bridge ?? false,
    compare: values.compare ?? [],
    dokrust: values.dokrust ?? `${TOP}/bin/dokrust`,
    runc: values.runc ?? Bun.which("runc") ?? "runc",
  };
}

/** Exits with a message when something the benchmark needs is missing. */
function checkPrerequisites(options: Options): void {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push("root (for namespaces, cgroups, mounts)");
  if (!existsSync(options.runc)) missing.push(`runc (${options.runc}; apt-get install runc)`);
  if (!existsSync(`${FIXTURE}/bin/true`)) {
    missing.push("the busybox fixture (sh test/fixtures/build.sh --busybox-only)");
  }
  if (missing.length > 0) {
    process.stderr.write(`bench: needs ${missing.join(", ")}\n`);
    process.exit(2);
  }
}

/**
 * The OCI bundle: `runc spec` patched to what the dokrust command line
 * asks for (the command, no terminal, hostname dokka, a writable root, a
 * cgroup namespace), keeping runc's default mounts and namespaces.
 */
async function makeBundle(runc: string, dir: string): Promise<void> {
  // cp -a: links, modes and owners as they are.
  mkdirSync(`${dir}/rootfs`);
  const copy = Bun.spawnSync(["cp", "-a", `${FIXTURE}/.`, `${dir}/rootfs/`], { stderr: "pipe" });
  if (copy.exitCode !== 0) {
    throw new Error(`copying the busybox rootfs failed: ${copy.stderr.toString().trim()}`);
  }
  const spec = Bun.spawnSync([runc, "spec"], { cwd: dir, stderr: "pipe" });
  if (spec.exitCode !== 0) throw new Error(`runc spec failed: ${spec.stderr.toString().trim()}`);
  const config = JSON.parse(readFileSync(`${dir}/config.json`, "utf8"));
  config.process.args = ["/bin/true"];
  config.process.terminal = false;
  config.hostname = "dokka";
  config.root = { path: "rootfs", readonly: false };
  const namespaces: Array<{ type: string }> = config.linux.namespaces;
  if (!namespaces.some((ns) => ns.type === "cgroup")) namespaces.push({ type: "cgroup" });
  writeFileSync(`${dir}/config.json`, `${JSON.stringify(config, null, 2)}\n`);
}

/**
 * Whether bin/dokrust would run the compiled bundle: the test the launcher
 * makes (every source named in dist/dokrust-sources.sh is older than that
 * file, which scripts/bundle.sh dates to the start of the build).
 */
function bundleIsFresh(): boolean {
  const list = `${TOP}/dist/dokrust-sources.sh`;
  if (process.env.DOKRUST_NO_BUNDLE || !existsSync(`${TOP}/dist/dokrust`) || !existsSync(list)) {
    return false;
  }
  const stamp = statSync(list).mtimeMs;
  const line = /^dokrust_sources='([^']*)'$/m.exec(readFileSync(list, "utf8"))?.[1] ?? "";
  const names = line.split(" ").filter(Boolean);
  const older = (f: string) => existsSync(`${TOP}/${f}`) && statSync(`${TOP}/${f}`).mtimeMs < stamp;
  return names.length > 0 && names.every(older);
}

/**
 * `--net none` for a dokrust that has --net: its default network is a
 * bridge with NAT, while the bundle's network namespace holds only lo.
 * (Older dokrusts, compared with --compare, have no --net and no network.)
 */
function netNone(launcher: string): string[] {
  const help = Bun.spawnSync([launcher, "--help"], { stdout: "pipe", stderr: "ignore" });
  return /\s--net\s/.test(help.stdout.toString()) ? ["--net", "none"] : [];
}

/**
 * One start; undefined when it failed because the benchmark is being
 * interrupted (Ctrl-C reaches the child too).
 */
async function runOnce(c: Contender, n: number): Promise<Sample | undefined> {
  const start = performance.now();
  const proc = Bun.spawn(c.argv(n), {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
    env: { ...process.env, ...c.env },
  });
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  const ms = performance.now() - start;
  if (code !== 0) {
    if (stopping) return undefined;
    throw new Error(`${c.name} run ${n} exited with ${code}: ${stderr.trim()}`);
  }
  const usage = proc.resourceUsage();
  const cpuMs = usage ? Number(usage.cpuTime.total) / 1000 : NaN;
  return { ms, cpuMs };
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Runs one start of each contender in turn, `runs` times. */
async function sequential(
  contenders: Contender[],
  options: Options,
  next: () => number,
): Promise<Map<string, Sample[]>> {
  const samples = new Map(contenders.map((c) => [c.name, [] as Sample[]]));
  for (let i = 0; i < options.warmup; i++) for (const c of contenders) await runOnce(c, next());
  for (let i = 0; i < options.runs && !stopping; i++) {
    // Alternate which one goes first, so neither always follows the other.
    const order = i % 2 === 0 ? contenders : [...contenders].reverse();
    for (const c of order) {
      if (options.gap > 0) await Bun.sleep(options.gap);
      const sample = await runOnce(c, next());
      if (sample) samples.get(c.name)!.push(sample);
    }
  }
  return samples;
}

/** `runs` starts of one contender, `concurrency` at a time; wall ms of the batch. */
async function batch(
  c: Contender,
  options: Options,
  next: () => number,
  sink: Sample[],
): Promise<number> {
  let started = 0;
  const start = performance.now();
  const worker = async () => {
    while (started < options.runs && !stopping) {
      started++;
      const sample = await runOnce(c, next());
      if (sample) sink.push(sample);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return performance.now() - start;
}

/** Median max RSS (MiB) of a few runs under /usr/bin/time, or undefined without it. */
function peakMemory(c: Contender, next: () => number): number | undefined {
  if (!existsSync(TIME)) return undefined;
  const values: number[] = [];
  for (let i = 0; i < MEMORY_RUNS; i++) {
    const run = Bun.spawnSync([TIME, "-f", "%M", ...c.argv(next())], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
      env: { ...process.env, ...c.env },
    });
    // time writes its line last, after whatever the command wrote.
    const kib = Number(run.stderr.toString().trim().split("\n").pop());
    if (run.exitCode !== 0 || !Number.isFinite(kib)) {
      throw new Error(`${c.name} under ${TIME} failed: ${run.stderr.toString().trim()}`);
    }
    values.push(kib / 1024);
  }
  return quantile(values, 0.5);
}

/** A table row: a name, then columns right-aligned to 7 characters and joined by gaps. */
function row(name: string, columns: string[]): string {
  return `${name.padEnd(16)} ${columns.map((c) => c.padStart(7)).join(" ")}`;
}

function printSequential(samples: Map<string, Sample[]>, memory: Map<string, number | undefined>) {
  console.log(row("", ["median", "p90", "min", "", "CPU", "max RSS"]));
  console.log(row("", ["(ms", "wall)", "", "", "(ms)", "(MiB)"]));
  for (const [name, list] of samples) {
    const ms = list.map((s) => s.ms);
    const cpu = quantile(list.map((s) => s.cpuMs), 0.5);
    const rss = memory.get(name);
    const times = [quantile(ms, 0.5), quantile(ms, 0.9), Math.min(...ms)].map((v) => v.toFixed(1));
    const rssText = rss === undefined ? "n/a" : rss.toFixed(1);
    console.log(row(name, [...times, "", cpu.toFixed(1), rssText]));
  }
  if (stopping) console.log("(interrupted: medians of the runs made so far; max RSS not measured)");
  else if ([...memory.values()].includes(undefined)) {
    console.log(`(max RSS: ${TIME} is missing; apt-get install time)`);
  }
}

function printRatios(medians: Map<string, number>, what: string): void {
  const runc = medians.get("runc");
  if (!runc) return;
  for (const [name, value] of medians) {
    if (name !== "runc") console.log(`ratio ${name}/runc (${what}): ${(value / runc).toFixed(2)}`);
  }
}

/** Set by SIGINT/SIGTERM: finish the current run, report, clean up. */
let stopping = false;

/** The runtimes to time, in the order of a round. */
function contendersFor(options: Options, dir: string): Contender[] {
  const rootfs = `${dir}/rootfs`;
  const dokrust = (path: string, net: string[]) => () => [path, ...net, "-r", rootfs, "--", "/bin/true"];
  const id = (n: number) => `dokrust-test-bench-${process.pid}-${n}`;
  const runc = (n: number) => [options.runc, "--root", `${dir}/runc-state`, "run", "--bundle", dir, id(n)];
  const fresh = bundleIsFresh();
  const main = dokrust(options.dokrust, netNone(options.dokrust));
  const contenders: Contender[] = [
    { name: fresh ? "dokrust" : "dokrust (source)", argv: main },
    { name: "runc", argv: runc },
  ];
  const sourceEnv = { DOKRUST_NO_BUNDLE: "1" };
  if (options.source && fresh) contenders.push({ name: "dokrust (source)", argv: main, env: sourceEnv });
  if (options.bridge) {
    contenders.push({ name: "dokrust (bridge)", argv: dokrust(options.dokrust, []) });
  }
  options.compare.forEach((path, i) => {
    console.log(`compare${i + 1}: ${path}`);
    contenders.push({ name: `compare${i + 1}`, argv: dokrust(path, netNone(path)) });
  });
  return contenders;
}

/** Alternating single starts, then peak memory; prints the table and the ratios. */
async function alternating(contenders: Contender[], options: Options, next: () => number) {
  const gap = options.gap > 0 ? `, ${options.gap} ms apart` : "";
  console.log(`${options.runs} runs each, alternating${gap}, after ${options.warmup} warm-ups each`);
  const samples = await sequential(contenders, options, next);
  const memoryOf = (c: Contender) => (stopping ? undefined : peakMemory(c, next));
  const memory = new Map(contenders.map((c) => [c.name, memoryOf(c)]));
  printSequential(samples, memory);
  const median = (list: Sample[]) => quantile(list.map((s) => s.ms), 0.5);
  printRatios(new Map([...samples].map(([name, list]) => [name, median(list)])), "median wall");
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  checkPrerequisites(options);
  const dir = mkdtempSync("/tmp/dokrust-test-bench-");
  let counter = 0;
  const next = () => counter++;
  const onSignal = () => {
    stopping = true;
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    await makeBundle(options.runc, dir);
    console.log(`/bin/true in ${dir}/rootfs (busybox); ${cpuSummary()}`);
    const contenders = contendersFor(options, dir);
    if (options.concurrency > 1) await concurrent(contenders, options, next);
    else await alternating(contenders, options, next);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    cleanup(options.runc, `${dir}/runc-state`, dir);
  }
}

/** Batches of `runs` starts, `concurrency` at a time; prints batch times and the ratios. */
async function concurrent(contenders: Contender[], options: Options, next: () => number) {
  const { runs, concurrency, rounds } = options;
  console.log(`${runs} runs, ${concurrency} at a time, ${rounds} rounds per runtime, alternating`);
  for (let i = 0; i < options.warmup; i++) for (const c of contenders) await runOnce(c, next());
  const walls = new Map(contenders.map((c) => [c.name, [] as number[]]));
  const samples = new Map(contenders.map((c) => [c.name, [] as Sample[]]));
  for (let r = 0; r < options.rounds && !stopping; r++) {
    const order = r % 2 === 0 ? contenders : [...contenders].reverse();
    for (const c of order) {
      walls.get(c.name)!.push(await batch(c, options, next, samples.get(c.name)!));
    }
  }
  console.log(row("", ["batch", "starts/", "", "each:", "median", "p90"]));
  console.log(row("", ["(ms)", "second", "", "", "(ms)", "(ms)"]));
  const medians = new Map<string, number>();
  for (const c of contenders) {
    const wall = quantile(walls.get(c.name)!, 0.5);
    medians.set(c.name, wall);
    const ms = samples.get(c.name)!.map((s) => s.ms);
    const each = [quantile(ms, 0.5), quantile(ms, 0.9)].map((v) => v.toFixed(1));
    const perSecond = ((options.runs * 1000) / wall).toFixed(1);
    console.log(row(c.name, [wall.toFixed(0), perSecond, "", "", ...each]));
  }
  printRatios(medians, "median batch wall");
}

function cpuSummary(): string {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const cpus = cpuinfo.split("\n").filter((l) => l.startsWith("processor")).length;
  return `${cpus} CPUs, kernel ${readFileSync("/proc/sys/kernel/osrelease", "utf8").trim()}`;
}

/** Removes what the runs left (runc deletes its containers as they exit) and the bundle. */
function cleanup(runc: string, runcRoot: string, dir: string): void {
  let leftovers: string[] = [];
  try {
    leftovers = readdirSync(runcRoot);
  } catch {
    // runc never ran
  }
  for (const id of leftovers) {
    const quiet = { stdout: "ignore", stderr: "ignore" } as const;
    Bun.spawnSync([runc, "--root", runcRoot, "delete", "--force", id], quiet);
  }
  rmSync(dir, { recursive: true, force: true });
}

try {
  await main();
} catch (err) {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
