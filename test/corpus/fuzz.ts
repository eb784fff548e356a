/**
 * Mutation fuzzing of the config path in-process: a valid config.json
 * (defaultSpec() plus the fields engines send) is mutated at random
 * (seeded), then validated (src/spec/load.ts), compiled into a plan
 * (src/plan/compile.ts, with a fake host) and encoded (src/plan/ops.ts)
 * as a create would.  The property: each iteration ends either in a plan
 * that encodes, or in a DokrustError (UsageError included) with a
 * one-line message; never another exception.
 *
 * Used by test/unit/fuzz.test.ts (fixed seed, ~2000 iterations) and
 * scripts/fuzz.ts (--iterations N --seed S) for long runs.
 */
import { DokrustError } from "../../src/errors.ts";
import { compilePlan, type PlanContext } from "../../src/plan/compile.ts";
import { CloneMode, encodePlan } from "../../src/plan/ops.ts";
import { seccompForSpec } from "../../src/seccomp/index.ts";
import { defaultSpec } from "../../src/spec/defaults.ts";
import { validateSpec } from "../../src/spec/load.ts";
import type { Spec } from "../../src/spec/types.ts";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** mulberry32: small, seeded, good enough to spread mutations. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A richer valid config than the default: every area the compiler reads. */
export function seedSpec(): Spec {
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.user = { uid: 1000, gid: 1000, additionalGids: [5, 6], umask: 18 };
  spec.process!.rlimits!.push({ type: "RLIMIT_NPROC", hard: 100, soft: 50 });
  spec.process!.oomScoreAdj = 100;
  spec.mounts!.push({ destination: "/data", type: "bind", source: "/srv/data", options: ["rbind", "ro", "rprivate"] });
  spec.mounts!.push({ destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "size=65536k", "mode=1777"] });
  spec.linux!.sysctl = { "net.ipv4.ip_forward": "1" };
  spec.linux!.resources = {
    devices: [{ allow: false, access: "rwm" }, { allow: true, type: "c", major: 1, minor: 3, access: "rwm" }],
    memory: { limit: 1 << 28 },
    cpu: { shares: 512, quota: 50000, period: 100000 },
    pids: { limit: 64 },
  };
  spec.linux!.devices = [{ path: "/dev/fuse", type: "c", major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 }];
  spec.linux!.rootfsPropagation = "rslave";
  spec.linux!.seccomp = {
    defaultAction: "SCMP_ACT_ERRNO",
    architectures: ["SCMP_ARCH_X86_64"],
    syscalls: [{ names: ["read", "write", "exit_group", "execve"], action: "SCMP_ACT_ALLOW" }, { names: ["personality"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 8, op: "SCMP_CMP_EQ" }] }],
  };
  spec.annotations = { "org.example.key": "value" };
  spec.hooks = { prestart: [{ path: "/bin/true", args: ["true"], timeout: 5 }] };
  return spec;
}

const STRINGS = ["", " ", "..", "/", "../../etc", "a".repeat(5000), "\u0000", "\ud800", "é", "RLIMIT_BOGUS", "CAP_BOGUS", "SCMP_ACT_BOGUS", "user", "-1", "1e400", "/proc/self/fd/3", "rbind", "=", "a=b=c"];
const NUMBERS = [0, -1, 1, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 53), 1e308, -1e308, 0.5, Number.MAX_SAFE_INTEGER + 2, 4096, 65536];

function randomValue(random: () => number, depth = 0): Json {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  switch (Math.floor(random() * (depth > 2 ? 4 : 6))) {
    case 0: return null;
    case 1: return random() < 0.5;
    case 2: return pick(NUMBERS);
    case 3: return pick(STRINGS);
    case 4: return Array.from({ length: Math.floor(random() * 3) }, () => randomValue(random, depth + 1));
    default: return Object.fromEntries(Array.from({ length: Math.floor(random() * 3) }, (_, i) => [pick(["type", "path", "source", "destination", "options", `k${i}`]), randomValue(random, depth + 1)]));
  }
}

/** Every container (object or array) in the tree, with the key that leads into it. */
function containers(root: Json): Array<Json[] | { [k: string]: Json }> {
  const out: Array<Json[] | { [k: string]: Json }> = [];
  const walk = (v: Json) => {
    if (v === null || typeof v !== "object") return;
    out.push(v);
    for (const child of Array.isArray(v) ? v : Object.values(v)) walk(child);
  };
  walk(root);
  return out;
}

/** Apply 1-4 random mutations to a copy of the document. */
export function mutate(doc: Json, random: () => number): Json {
  const copy = structuredClone(doc);
  const count = 1 + Math.floor(random() * 4);
  for (let i = 0; i < count; i++) {
    const all = containers(copy);
    const target = all[Math.floor(random() * all.length)]!;
    const keys = Array.isArray(target) ? target.map((_, k) => k) : Object.keys(target);
    const action = random();
    if (keys.length === 0 || action < 0.15) {
      // add a field or an element
      if (Array.isArray(target)) target.push(randomValue(random));
      else target[`k${Math.floor(random() * 5)}`] = randomValue(random);
      continue;
    }
    const key = keys[Math.floor(random() * keys.length)]!;
    const set = (v: Json) => ((target as Record<string | number, Json>)[key] = v);
    const get = () => (target as Record<string | number, Json>)[key]!;
    if (action < 0.35) {
      if (Array.isArray(target)) target.splice(key as number, 1);
      else delete target[key as string];
    } else if (action < 0.6) {
      set(randomValue(random));
    } else if (action < 0.75) {
      const v = get();
      set(typeof v === "number" ? NUMBERS[Math.floor(random() * NUMBERS.length)]! : typeof v === "string" ? STRINGS[Math.floor(random() * STRINGS.length)]! : randomValue(random));
    } else if (action < 0.85) {
      // duplicate an element of an array (two mounts on one target, two namespaces of a kind ...)
      if (Array.isArray(target)) target.push(structuredClone(get()));
      else set(structuredClone(get()));
    } else {
      // grow: a long array or string
      const v = get();
      set(typeof v === "string" ? v.repeat(200) : Array.isArray(v) ? Array.from({ length: 300 }, () => structuredClone(v[0] ?? null)) : v);
    }
  }
  return copy;
}

const CTX: PlanContext = {
  rootfs: "/srv/root",
  base: "/srv",
  isDirectory: (p) => !p.endsWith(".txt"),
  cgroupProcs: ["/sys/fs/cgroup/pids/x/cgroup.procs"],
  cloneMode: CloneMode.DETACH,
  execFifo: "/run/dokrust/x/exec.fifo",
  preserveFds: 0,
};

export type Outcome = "plan" | "refused";

/** One iteration's verdict: a plan, a clean refusal, or the offending exception (a bug). */
export async function runOne(doc: Json): Promise<{ outcome: Outcome } | { bug: string }> {
  try {
    const spec = await validateSpec(doc);
    const ctx: PlanContext = { ...CTX };
    const seccomp = seccompForSpec(spec);
    if (seccomp) ctx.seccomp = { program: seccomp.program, flags: seccomp.flags };
    encodePlan(compilePlan(spec, ctx));
    return { outcome: "plan" };
  } catch (err) {
    if (!(err instanceof DokrustError)) return { bug: `${(err as Error)?.constructor?.name ?? typeof err}: ${(err as Error)?.message ?? String(err)}` };
    if (err.message.includes("\n") || err.message.trim() === "") return { bug: `multi-line or empty message: ${JSON.stringify(err.message)}` };
    return { outcome: "refused" };
  }
}

/** Run `iterations` mutations from `seed`; returns counts and the first bugs with their mutated documents. */
export async function fuzz(iterations: number, seed: number): Promise<{ plans: number; refused: number; bugs: Array<{ iteration: number; bug: string; doc: string }> }> {
  const random = prng(seed);
  const base = JSON.parse(JSON.stringify(seedSpec())) as Json;
  let plans = 0;
  let refused = 0;
  const bugs: Array<{ iteration: number; bug: string; doc: string }> = [];
  for (let i = 0; i < iterations; i++) {
    const doc = mutate(base, random);
    const r = await runOne(doc);
    if ("bug" in r) {
      if (bugs.length < 20) bugs.push({ iteration: i, bug: r.bug, doc: JSON.stringify(doc).slice(0, 2000) });
    } else if (r.outcome === "plan") plans++;
    else refused++;
  }
  return { plans, refused, bugs };
}
