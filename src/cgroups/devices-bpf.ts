/**
 * The cgroup v2 device controller is a BPF program, not a pair of files:
 * a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup sees every
 * device open and mknod (Documentation/admin-guide/cgroup-v2.rst, "Device
 * controller") and returns 1 to allow or 0 to deny.  This module compiles
 * the OCI rule list into such a program; src/native/bpf.ts loads it.
 *
 * Semantics: default deny, and for each access kind (m, r, w) on its own
 * the last rule naming that kind and matching the device decides, which
 * is what v1's devices.allow/deny writes in order amount to (a deny rule
 * for "w" takes w away and leaves r).  An access asking for several kinds
 * (open O_RDWR asks for r and w) is allowed only if every kind is.
 *
 * The program reads struct bpf_cgroup_dev_ctx { u32 access_type; u32
 * major; u32 minor } where access_type holds the device type in its low
 * 16 bits (BPF_DEVCG_DEV_BLOCK 1, CHAR 2) and the access in its high 16
 * bits (BPF_DEVCG_ACC_MKNOD 1, READ 2, WRITE 4).  Layout of each check:
 *
 *   r2 = access_type; r3 = r2 & 0xffff (type); r2 >>= 16 (access)
 *   r4 = major; r5 = minor
 *   per kind k:  r0 = r2 & k; if r0 == 0 goto next kind
 *     per rule naming k, last first:
 *       if r3 != type goto next rule; if r4 != major ...; if r5 != minor ...
 *       deny: r0 = 0; exit       allow: goto next kind
 *     r0 = 0; exit                (no rule: default deny)
 *   r0 = 1; exit
 */
import { DokrustError } from "../errors.ts";
import type { DeviceRule } from "../spec/types.ts";

/** One struct bpf_insn, before encoding. */
export interface BpfInsn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

/** Opcodes used here (linux/bpf_common.h, linux/bpf.h). */
export const OP = {
  LDXW: 0x61, // BPF_LDX | BPF_MEM | BPF_W
  AND32K: 0x54, // BPF_ALU | BPF_AND | BPF_K
  RSH32K: 0x74, // BPF_ALU | BPF_RSH | BPF_K
  MOV32X: 0xbc, // BPF_ALU | BPF_MOV | BPF_X
  MOV32K: 0xb4, // BPF_ALU | BPF_MOV | BPF_K
  JA: 0x05, // BPF_JMP | BPF_JA
  JEQK: 0x15, // BPF_JMP | BPF_JEQ | BPF_K
  JNEK: 0x55, // BPF_JMP | BPF_JNE | BPF_K
  EXIT: 0x95, // BPF_JMP | BPF_EXIT
} as const;

/** Device types and access bits of bpf_cgroup_dev_ctx.access_type. */
export const DEV_BLOCK = 1;
export const DEV_CHAR = 2;
export const ACC_MKNOD = 1;
export const ACC_READ = 2;
export const ACC_WRITE = 4;

const ACCESS_BITS: Record<string, number> = { m: ACC_MKNOD, r: ACC_READ, w: ACC_WRITE };
const KINDS = [ACC_MKNOD, ACC_READ, ACC_WRITE] as const;
// Registers: r1 = ctx, r2 = access, r3 = type, r4 = major, r5 = minor.
const R0 = 0, R1 = 1, R2 = 2, R3 = 3, R4 = 4, R5 = 5;

/** A rule reduced to what the program compares; undefined is a wildcard. */
interface Match {
  allow: boolean;
  type: number | undefined;
  major: number | undefined;
  minor: number | undefined;
  access: number;
}

function insn(code: number, dst = 0, src = 0, off = 0, imm = 0): BpfInsn {
  return { code, dst, src, off, imm };
}

/** A device number from a rule: -1 or absent means any; else 0..2^31-1. */
function deviceNumber(value: number | undefined, what: string, index: number): number | undefined {
  if (value === undefined || value === -1) return undefined;
  if (!Number.isInteger(value) || value < 0 || value > 0x7fffffff) {
    throw new DokrustError(`linux.resources.devices/${index}: ${what} ${value} is not a device number`);
  }
  return value;
}

function toMatch(rule: DeviceRule, index: number): Match {
  let access = 0;
  for (const ch of rule.access ?? "rwm") {
    const bit = ACCESS_BITS[ch];
    if (bit === undefined) {
      throw new DokrustError(`linux.resources.devices/${index}: bad access ${JSON.stringify(rule.access)}`);
    }
    access |= bit;
  }
  const kind = rule.type ?? "a";
  if (kind === "a") return { allow: rule.allow, type: undefined, major: undefined, minor: undefined, access };
  if (kind !== "b" && kind !== "c") {
    throw new DokrustError(`linux.resources.devices/${index}: bad type ${JSON.stringify(kind)}`);
  }
  return {
    allow: rule.allow,
    type: kind === "b" ? DEV_BLOCK : DEV_CHAR,
    major: deviceNumber(rule.major, "major", index),
    minor: deviceNumber(rule.minor, "minor", index),
    access,
  };
}

/** The comparisons of one rule, each jumping to `skip` (patched later) on mismatch. */
function ruleTests(m: Match): BpfInsn[] {
  const tests: BpfInsn[] = [];
  if (m.type !== undefined) tests.push(insn(OP.JNEK, R3, 0, 0, m.type));
  if (m.major !== undefined) tests.push(insn(OP.JNEK, R4, 0, 0, m.major));
  if (m.minor !== undefined) tests.push(insn(OP.JNEK, R5, 0, 0, m.minor));
  return tests;
}

/**
 * The block deciding one access kind.  Jumps are relative to the next
 * instruction; "end" is the first instruction after the block.
 */
function kindBlock(kind: number, matches: readonly Match[]): BpfInsn[] {
  const body: BpfInsn[] = [];
  const toEnd: number[] = [];
  let catchAll: Match | undefined;
  for (const m of [...matches].reverse()) {
    if ((m.access & kind) === 0) continue;
    const tests = ruleTests(m);
    // A rule matching every device shadows the ones before it.
    if (tests.length === 0) {
      catchAll = m;
      break;
    }
    const action = m.allow ? [insn(OP.JA)] : [insn(OP.MOV32K, R0, 0, 0, 0), insn(OP.EXIT)];
    tests.forEach((t, i) => (t.off = tests.length - 1 - i + action.length));
    body.push(...tests, ...action);
    if (m.allow) toEnd.push(body.length - 1);
  }
  // The verifier rejects unreachable code, so the fall-through decision
  // (the catch-all rule or default deny) is emitted only when it denies.
  if (!catchAll?.allow) body.push(insn(OP.MOV32K, R0, 0, 0, 0), insn(OP.EXIT));
  for (const at of toEnd) body[at]!.off = body.length - 1 - at;
  if (body.length === 0) return [];
  // Skip the block when this kind is not asked for.
  return [insn(OP.MOV32X, R0, R2), insn(OP.AND32K, R0, 0, 0, kind), insn(OP.JEQK, R0, 0, body.length, 0), ...body];
}

/** Compile OCI device rules to a cgroup device program (default deny). */
export function compileDeviceRules(rules: readonly DeviceRule[]): BpfInsn[] {
  const matches = rules.map(toMatch);
  const prologue = [
    insn(OP.LDXW, R2, R1, 0),
    insn(OP.MOV32X, R3, R2),
    insn(OP.AND32K, R3, 0, 0, 0xffff),
    insn(OP.RSH32K, R2, 0, 0, 16),
    insn(OP.LDXW, R4, R1, 4),
    insn(OP.LDXW, R5, R1, 8),
  ];
  const blocks = KINDS.flatMap((kind) => kindBlock(kind, matches));
  return [...prologue, ...blocks, insn(OP.MOV32K, R0, 0, 0, 1), insn(OP.EXIT)];
}

/** Encode instructions as the kernel reads them: 8 bytes each, little-endian. */
export function encodeProgram(program: readonly BpfInsn[]): Uint8Array {
  const bytes = new Uint8Array(program.length * 8);
  const view = new DataView(bytes.buffer);
  program.forEach((ins, i) => {
    view.setUint8(i * 8, ins.code);
    view.setUint8(i * 8 + 1, (ins.dst & 0xf) | ((ins.src & 0xf) << 4));
    view.setInt16(i * 8 + 2, ins.off, true);
    view.setInt32(i * 8 + 4, ins.imm, true);
  });
  return bytes;
}
