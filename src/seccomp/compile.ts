/**
 * The seccomp compiler: an OCI `linux.seccomp` profile → a classic BPF
 * program for seccomp(2) (SECCOMP_SET_MODE_FILTER) and its flags.  Pure:
 * the unit tests run its output through a BPF interpreter.
 *
 * The program, per call:
 *
 *   1. load seccomp_data.arch; an architecture outside the filter gets
 *      the bad-arch action, SECCOMP_RET_KILL_PROCESS (libseccomp kills
 *      too; the whole process rather than one thread of it, so nothing is
 *      left half-running);
 *   2. load the call number, and find its decision by binary search over
 *      ranges of numbers that share one (jge comparisons, so ~9 steps for
 *      ~400 calls, where libseccomp's default is a linear scan);
 *   3. a call with argument conditions tries its rules in profile order:
 *      the first whose conditions all hold (AND) decides; several rules
 *      for one call are thus ORed; when none holds, the default action.
 *
 * Semantics follow runc (libcontainer/seccomp):
 *   - the native architecture is always in the filter; `architectures`
 *     adds to it; on x86_64 the x32 ABI (call numbers with bit 30 set) is
 *     in the filter only when SCMP_ARCH_X32 is listed, else it gets the
 *     bad-arch action;
 *   - a rule whose action is the default action is skipped;
 *   - a rule with several conditions on the same argument becomes one rule
 *     per condition (ORed), as runc does for libseccomp's sake;
 *   - a name no architecture of the filter knows is skipped with a
 *     warning; one that only some know applies where it exists;
 *   - unless the default action lets calls through (ALLOW, LOG, TRACE), a
 *     call numbered above every call the profile names gets ENOSYS rather
 *     than the default action: it is newer than the profile, and ENOSYS is
 *     what makes programs fall back to an older call (runc's patchbpf);
 *   - on 32-bit ABIs (i386, x32) argument conditions compare the low 32
 *     bits, as libseccomp does; elsewhere both halves of the 64-bit value.
 */
import { UsageError } from "../errors.ts";
import type { Seccomp } from "../spec/types.ts";
import { ARCHES, FOREIGN_SYSCALLS, X32_BIT, archByName, nativeArch, syscallTable } from "./arch.ts";
import type { Arch } from "./arch.ts";
import { Assembler, BPF, type Label, type Target } from "./bpf.ts";

/** SECCOMP_RET_* (linux/seccomp.h); ERRNO and TRACE carry 16 bits of data. */
export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

/** seccomp(2) flags a profile may ask for. */
export const FILTER_FLAGS: Readonly<Record<string, number>> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
};

export const EPERM = 1;
export const ENOSYS = 38;

/** Offsets in struct seccomp_data (little-endian: an argument's low word first). */
const DATA = { nr: 0, arch: 4, arg: (i: number) => 16 + 8 * i } as const;

/** An argument value: JSON numbers, or exact bigints (or decimal text) from a lossless parse. */
export type ArgValue = number | bigint | string;

/** One argument condition of a rule. */
export interface SeccompArg {
  index: number;
  value: ArgValue;
  valueTwo?: ArgValue;
  op: string;
}

/** One entry of linux.seccomp.syscalls. */
export interface SeccompRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[];
}

/** linux.seccomp as the compiler accepts it: spec.types' Seccomp, values widened to 64 bits. */
export interface SeccompProfile extends Omit<Seccomp, "syscalls"> {
  syscalls?: SeccompRule[];
}

export interface CompiledSeccomp {
  /** struct sock_filter records, 8 bytes each. */
  program: Uint8Array;
  /** seccomp(2) flags. */
  flags: number;
  /** Parts of the profile that were skipped, in words for the user. */
  warnings: string[];
}

export interface CompileOptions {
  /** The machine's SCMP_ARCH_* (default: the one dokrust runs on). */
  native?: string;
}

interface Cond {
  index: number;
  op: string;
  value: bigint;
  valueTwo: bigint;
}

interface Rule {
  ret: number;
  conds: Cond[];
  bits: 32 | 64;
}

/** One AUDIT_ARCH value's part of the filter: its ABIs and their rules by call number. */
interface Section {
  audit: number;
  /** The ABIs sharing the audit value, with the number range each owns. */
  parts: Part[];
  rules: Map<number, Rule[]>;
}

interface Part {
  /** The ABI; undefined for the half of AUDIT_ARCH_X86_64 left out of the filter. */
  arch: Arch | undefined;
  /** The call numbers that belong to this ABI: [first, end) ranges. */
  ranges: Array<[number, number]>;
  /** The highest number the profile names for it (the ENOSYS threshold). */
  maxNr: number;
}

type Leaf = { kind: "ret"; ret: number } | { kind: "rules"; rules: Rule[]; fallback: number };

/** Call numbers from `first` up to the next interval's first share one leaf. */
interface Interval {
  first: number;
  leaf: Leaf;
}

const U64_MAX = (1n << 64n) - 1n;

/** Compile a profile; throws UsageError for what cannot be honoured. */
export function compileSeccomp(
  profile: SeccompProfile,
  options: CompileOptions = {},
): CompiledSeccomp {
  const warnings: string[] = [];
  const { defaultAction, defaultErrnoRet } = profile;
  const defaultRet = actionRet(defaultAction, defaultErrnoRet, "linux.seccomp.defaultAction");
  const enosys = !["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"].includes(defaultAction);
  const sections = buildSections(profile, options.native ?? nativeArch(), warnings);
  addRules(profile, sections, defaultRet, warnings);
  const asm = new Assembler();
  asm.load(DATA.arch);
  const entries = sections.map((s) => {
    const at = asm.label();
    asm.jump(BPF.JEQ_K, s.audit, at, "next");
    return at;
  });
  asm.ret(SECCOMP_RET.KILL_PROCESS);
  sections.forEach((section, i) => {
    asm.place(entries[i]!);
    asm.load(DATA.nr);
    const intervals = decisionIntervals(section, defaultRet, enosys);
    emitTree(asm, intervals, 0, intervals.length - 1);
  });
  if (profile.listenerPath) {
    warnings.push("seccomp: listenerPath is ignored: dokrust has no seccomp agent to notify");
  }
  return { program: asm.assemble(), flags: filterFlags(profile.flags), warnings };
}

function filterFlags(flags: readonly string[] | undefined): number {
  let out = 0;
  for (const flag of flags ?? []) {
    const bit = FILTER_FLAGS[flag];
    if (bit === undefined) {
      throw new UsageError(`linux.seccomp.flags: ${flag} is not known to dokrust`);
    }
    out |= bit;
  }
  return out;
}

/** The actions dokrust carries out → SECCOMP_RET_*; ERRNO and TRACE add errnoRet (EPERM). */
export const ACTIONS: Readonly<Record<string, number>> = {
  SCMP_ACT_KILL: SECCOMP_RET.KILL_THREAD,
  SCMP_ACT_KILL_THREAD: SECCOMP_RET.KILL_THREAD,
  SCMP_ACT_KILL_PROCESS: SECCOMP_RET.KILL_PROCESS,
  SCMP_ACT_TRAP: SECCOMP_RET.TRAP,
  SCMP_ACT_ERRNO: SECCOMP_RET.ERRNO,
  SCMP_ACT_TRACE: SECCOMP_RET.TRACE,
  SCMP_ACT_LOG: SECCOMP_RET.LOG,
  SCMP_ACT_ALLOW: SECCOMP_RET.ALLOW,
};

/** An action name (and errno) → SECCOMP_RET_* value. */
export function actionRet(action: string, errnoRet: number | undefined, where: string): number {
  if (action === "SCMP_ACT_NOTIFY") {
    throw new UsageError(
      `${where}: SCMP_ACT_NOTIFY needs a seccomp agent (listenerPath); dokrust has none`,
    );
  }
  const ret = ACTIONS[action];
  if (ret === undefined) throw new UsageError(`${where}: unknown action ${JSON.stringify(action)}`);
  const takesErrno = action === "SCMP_ACT_ERRNO" || action === "SCMP_ACT_TRACE";
  if (!takesErrno) {
    if (errnoRet !== undefined) {
      throw new UsageError(
        `${where}: errnoRet is given but ${action} returns no errno (only ERRNO and TRACE do)`,
      );
    }
    return ret;
  }
  const data = errnoRet ?? EPERM;
  if (!Number.isInteger(data) || data < 0 || data > 0xffff) {
    throw new UsageError(`${where}: errnoRet ${data} is not a number from 0 to 65535`);
  }
  return (ret | data) >>> 0;
}

/** The filter's architectures grouped by AUDIT_ARCH value, native first. */
function buildSections(profile: SeccompProfile, native: string, warnings: string[]): Section[] {
  const arches: Arch[] = [];
  for (const name of [native, ...(profile.architectures ?? [])]) {
    const arch = archByName(name);
    if (arch === "no table") {
      warnings.push(`seccomp: no system call table for ${name}; it is left out of the filter`);
    } else if (!arches.includes(arch)) arches.push(arch);
  }
  const sections: Section[] = [];
  for (const arch of arches) {
    let section = sections.find((s) => s.audit === arch.audit);
    if (!section) {
      section = { audit: arch.audit, parts: [], rules: new Map() };
      sections.push(section);
    }
    section.parts.push({ arch, ranges: rangesOf(arch), maxNr: -1 });
  }
  for (const section of sections) {
    if (section.audit !== ARCHES.SCMP_ARCH_X86_64!.audit) continue;
    // x86_64 and x32 share AUDIT_ARCH_X86_64: the half not in the filter
    // is a foreign architecture.
    for (const arch of [ARCHES.SCMP_ARCH_X86_64!, ARCHES.SCMP_ARCH_X32!]) {
      if (section.parts.some((p) => p.arch === arch)) continue;
      section.parts.push({ arch: undefined, ranges: rangesOf(arch), maxNr: -1 });
    }
  }
  return sections;
}

const NR_END = 2 ** 32;

/** The call numbers an ABI owns; x32's have bit 30 set (and are not negative). */
function rangesOf(arch: Arch): Array<[number, number]> {
  if (arch === ARCHES.SCMP_ARCH_X32) return [[X32_BIT, 0x80000000]];
  if (arch === ARCHES.SCMP_ARCH_X86_64) return [[0, X32_BIT], [0x80000000, NR_END]];
  return [[0, NR_END]];
}

function addRules(
  profile: SeccompProfile,
  sections: Section[],
  defaultRet: number,
  warnings: string[],
): void {
  const unknown = new Set<string>();
  (profile.syscalls ?? []).forEach((entry, i) => {
    const where = `linux.seccomp.syscalls[${i}]`;
    if (!Array.isArray(entry.names) || entry.names.length === 0) {
      throw new UsageError(`${where}: names is empty`);
    }
    const ret = actionRet(entry.action, entry.errnoRet, where);
    const condSets = conditionSets(entry.args ?? [], where, warnings);
    for (const name of entry.names) {
      let known = false;
      for (const section of sections) {
        for (const part of section.parts) {
          if (!part.arch) continue;
          const nr = syscallTable(part.arch).get(name);
          if (nr === undefined) continue;
          known = true;
          part.maxNr = Math.max(part.maxNr, nr);
          if (ret === defaultRet) continue;
          const list = section.rules.get(nr) ?? [];
          for (const conds of condSets) list.push({ ret, conds, bits: part.arch.bits });
          section.rules.set(nr, list);
        }
      }
      if (!known && !FOREIGN_SYSCALLS.has(name) && !unknown.has(name)) {
        unknown.add(name);
        warnings.push(`seccomp: unknown system call ${JSON.stringify(name)} in ${where}; skipped`);
      }
    }
  });
}

/** A rule's args → the condition sets it stands for (ORed). */
function conditionSets(args: readonly SeccompArg[], where: string, warnings: string[]): Cond[][] {
  const conds = args.map((arg, j) => condition(arg, `${where}.args[${j}]`, warnings));
  const indexes = conds.map((c) => c.index);
  const shared = indexes.some((index, j) => indexes.indexOf(index) !== j);
  return shared ? conds.map((c) => [c]) : [conds];
}

/** Argument comparisons with `value`; MASKED_EQ: (argument & value) == valueTwo. */
export const OPERATORS = [
  "SCMP_CMP_NE",
  "SCMP_CMP_LT",
  "SCMP_CMP_LE",
  "SCMP_CMP_EQ",
  "SCMP_CMP_GE",
  "SCMP_CMP_GT",
  "SCMP_CMP_MASKED_EQ",
] as const;
const OPS = new Set<string>(OPERATORS);

function condition(arg: SeccompArg, where: string, warnings: string[]): Cond {
  if (!Number.isInteger(arg.index) || arg.index < 0 || arg.index > 5) {
    throw new UsageError(`${where}: index ${arg.index} is not an argument number from 0 to 5`);
  }
  if (!OPS.has(arg.op)) {
    throw new UsageError(`${where}: unknown operator ${JSON.stringify(arg.op)}`);
  }
  return {
    index: arg.index,
    op: arg.op,
    value: u64(arg.value, `${where}.value`, warnings),
    valueTwo: u64(arg.valueTwo ?? 0, `${where}.valueTwo`, warnings),
  };
}

/** A 64-bit unsigned argument value. */
export function u64(value: ArgValue, where: string, warnings: string[]): bigint {
  let v: bigint;
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new UsageError(`${where}: ${value} is not an integer`);
    // 18446744073709551615 (2^64-1) reads back from JSON as 2^64.
    if (value === 2 ** 64) return U64_MAX;
    if (!Number.isSafeInteger(value) && value > 0) {
      warnings.push(`seccomp: ${where}: ${value} is beyond 2^53: reading JSON may have rounded it`);
    }
    v = BigInt(value);
  } else if (typeof value === "string") {
    if (!/^\d+$/.test(value)) {
      throw new UsageError(`${where}: ${JSON.stringify(value)} is not an unsigned integer`);
    }
    v = BigInt(value);
  } else v = value;
  if (v < 0n || v > U64_MAX) {
    throw new UsageError(`${where}: ${v} is outside the unsigned 64-bit range`);
  }
  return v;
}

/**
 * The call numbers of a section as intervals that share one decision, in
 * order: each ABI's numbers one by one up to the highest the profile
 * names, then the rest of its range at once.
 */
function decisionIntervals(section: Section, defaultRet: number, enosys: boolean): Interval[] {
  const out: Interval[] = [];
  const push = (first: number, leaf: Leaf) => {
    const last = out[out.length - 1]?.leaf;
    if (last?.kind === "ret" && leaf.kind === "ret" && last.ret === leaf.ret) return;
    out.push({ first, leaf });
  };
  const defaultLeaf: Leaf = { kind: "ret", ret: defaultRet };
  const enosysLeaf: Leaf = { kind: "ret", ret: (SECCOMP_RET.ERRNO | ENOSYS) >>> 0 };
  const regions = section.parts.flatMap((p) => p.ranges.map(([first, end]) => ({ first, end, p })));
  regions.sort((a, b) => a.first - b.first);
  for (const { first, end, p: part } of regions) {
    if (!part.arch) {
      push(first, { kind: "ret", ret: SECCOMP_RET.KILL_PROCESS });
      continue;
    }
    const named = Math.min(end, part.maxNr + 1);
    for (let nr = first; nr < named; nr++) {
      const rules = section.rules.get(nr);
      push(nr, rules ? ruleLeaf(rules, defaultRet) : defaultLeaf);
    }
    // Above the profile's highest call: calls newer than the profile.
    const newer = enosys && part.maxNr >= 0 ? enosysLeaf : defaultLeaf;
    if (Math.max(first, named) < end) push(Math.max(first, named), newer);
  }
  return out;
}

/** A call's rules as a leaf: a plain return when its first rule has no conditions. */
function ruleLeaf(rules: Rule[], fallback: number): Leaf {
  if (rules[0]!.conds.length === 0) return { kind: "ret", ret: rules[0]!.ret };
  return { kind: "rules", rules, fallback };
}

/** Binary search on the call number (in A) down to a leaf. */
function emitTree(asm: Assembler, intervals: Interval[], lo: number, hi: number): void {
  if (lo === hi) {
    emitLeaf(asm, intervals[lo]!.leaf);
    return;
  }
  const mid = (lo + hi + 1) >> 1;
  const upper = asm.label();
  asm.jump(BPF.JGE_K, intervals[mid]!.first, upper, "next");
  emitTree(asm, intervals, lo, mid - 1);
  asm.place(upper);
  emitTree(asm, intervals, mid, hi);
}

function emitLeaf(asm: Assembler, leaf: Leaf): void {
  if (leaf.kind === "ret") {
    asm.ret(leaf.ret);
    return;
  }
  for (const rule of leaf.rules) {
    if (rule.conds.length === 0) {
      // Unconditional: it decides, and the rules after it never run.
      asm.ret(rule.ret);
      return;
    }
    const next = asm.label();
    for (const cond of rule.conds) emitCondition(asm, cond, rule.bits, next);
    asm.ret(rule.ret);
    asm.place(next);
  }
  asm.ret(leaf.fallback);
}

/**
 * Test one condition; fall through when it holds, jump to `fail` when it
 * does not.  64-bit values are compared high word first: only when the
 * high words are equal does the low word decide.
 */
function emitCondition(asm: Assembler, cond: Cond, bits: 32 | 64, fail: Label): void {
  const pass = asm.label();
  const lowOffset = DATA.arg(cond.index);
  const words = (v: bigint): Array<[number, number]> => {
    const low: [number, number] = [lowOffset, Number(v & 0xffffffffn)];
    return bits === 64 ? [[lowOffset + 4, Number(v >> 32n)], low] : [low];
  };
  const value = words(cond.value);
  value.forEach(([offset, k], i) => {
    const last = i === value.length - 1;
    const more: Target = last ? pass : "next";
    asm.load(offset);
    switch (cond.op) {
      case "SCMP_CMP_EQ":
        asm.jump(BPF.JEQ_K, k, more, fail);
        break;
      case "SCMP_CMP_NE":
        asm.jump(BPF.JEQ_K, k, last ? fail : "next", pass);
        break;
      case "SCMP_CMP_MASKED_EQ":
        asm.and(k);
        asm.jump(BPF.JEQ_K, words(cond.valueTwo)[i]![1], more, fail);
        break;
      default:
        emitOrder(asm, cond.op, k, last, pass, fail);
    }
  });
  asm.place(pass);
}

/** GT/GE/LT/LE on one word: an upper word decides unless equal; the last word decides. */
function emitOrder(asm: Assembler, op: string, k: number, last: boolean, pass: Label, fail: Label) {
  const greater = op === "SCMP_CMP_GT" || op === "SCMP_CMP_GE";
  const [above, below] = greater ? [pass, fail] : [fail, pass];
  if (!last) {
    asm.jump(BPF.JGT_K, k, above, "next");
    asm.jump(BPF.JEQ_K, k, "next", below);
    return;
  }
  // GT: A > k; GE: A >= k; LT: !(A >= k); LE: !(A > k).
  const code = op === "SCMP_CMP_GE" || op === "SCMP_CMP_LT" ? BPF.JGE_K : BPF.JGT_K;
  asm.jump(code, k, above, below);
}
