import { expect, test } from "bun:test";
import { compileDeviceRules, encodeProgram } from "../../src/cgroups/devices-bpf.ts";
import { DokrustError } from "../../src/errors.ts";
import { DEFAULT_DEVICE_RULES } from "../../src/spec/defaults.ts";
import type { DeviceRule } from "../../src/spec/types.ts";

const BLOCK = 1;
const CHAR = 2;
const M = 1;
const R = 2;
const W = 4;

interface Query {
  type: number;
  major: number;
  minor: number;
  access: number;
}

const u64 = (v: bigint) => BigInt.asUintN(64, v);
const u32 = (v: bigint) => BigInt.asUintN(32, v);

/**
 * A tiny eBPF interpreter for the instructions the compiler emits, run on
 * the encoded bytes.  Anything else, a backward jump or a jump out of the
 * program fails the test, as the kernel's verifier would refuse it.
 */
function run(code: Uint8Array, q: Query): number {
  const view = new DataView(code.buffer, code.byteOffset, code.byteLength);
  const ctx = [BigInt((q.access << 16) | q.type), BigInt(q.major), BigInt(q.minor)];
  const reg: Array<bigint | undefined> = new Array(11).fill(undefined);
  reg[1] = -1n; // the ctx pointer: only used as the base of loads
  const count = code.length / 8;
  let pc = 0;
  const get = (r: number) => {
    const v = reg[r];
    if (v === undefined) throw new Error(`read of uninitialised r${r} at ${pc}`);
    return v;
  };
  for (;;) {
    if (pc < 0 || pc >= count) throw new Error(`pc ${pc} out of the program`);
    const at = pc * 8;
    const op = view.getUint8(at);
    const dst = view.getUint8(at + 1) & 0xf;
    const src = view.getUint8(at + 1) >> 4;
    const off = view.getInt16(at + 2, true);
    const imm = BigInt(view.getInt32(at + 4, true));
    pc++;
    const jump = (taken: boolean) => {
      if (off < 0) throw new Error("backward jump");
      if (taken) pc += off;
    };
    switch (op) {
      case 0x61: // ldx w
        if (src !== 1 || off % 4 !== 0 || off < 0 || off > 8) throw new Error(`bad ctx load at ${pc - 1}`);
        reg[dst] = ctx[off / 4]!;
        break;
      case 0x54: reg[dst] = u32(get(dst) & u32(imm)); break;
      case 0x74: reg[dst] = u32(get(dst)) >> imm; break;
      case 0xbc: reg[dst] = u32(get(src)); break;
      case 0xb4: reg[dst] = u32(imm); break;
      case 0x05: jump(true); break;
      case 0x15: jump(get(dst) === u64(imm)); break;
      case 0x55: jump(get(dst) !== u64(imm)); break;
      case 0x95: return Number(get(0));
      default: throw new Error(`unexpected opcode 0x${op.toString(16)} at ${pc - 1}`);
    }
  }
}

/** The reference: per access kind, the last rule naming it and matching the device decides. */
function reference(rules: readonly DeviceRule[], q: Query): number {
  for (const bit of [M, R, W]) {
    if ((q.access & bit) === 0) continue;
    let allowed = false;
    for (const rule of rules) {
      const access = rule.access ?? "rwm";
      const letter = bit === M ? "m" : bit === R ? "r" : "w";
      if (!access.includes(letter)) continue;
      const type = rule.type ?? "a";
      if (type !== "a") {
        if ((type === "b" ? BLOCK : CHAR) !== q.type) continue;
        if (rule.major !== undefined && rule.major !== -1 && rule.major !== q.major) continue;
        if (rule.minor !== undefined && rule.minor !== -1 && rule.minor !== q.minor) continue;
      }
      allowed = rule.allow;
    }
    if (!allowed) return 0;
  }
  return 1;
}

const decide = (rules: DeviceRule[], q: Query) => run(encodeProgram(compileDeviceRules(rules)), q);

function allQueries(): Query[] {
  const out: Query[] = [];
  for (const type of [BLOCK, CHAR])
    for (let major = 0; major < 4; major++)
      for (let minor = 0; minor < 4; minor++)
        for (let access = 1; access < 8; access++) out.push({ type, major, minor, access });
  return out;
}

test("compileDeviceRules() follows docker's default rules", () => {
  const code = encodeProgram(compileDeviceRules(DEFAULT_DEVICE_RULES));
  expect(run(code, { type: CHAR, major: 1, minor: 3, access: R | W })).toBe(1); // /dev/null
  expect(run(code, { type: CHAR, major: 136, minor: 7, access: R | W })).toBe(1); // /dev/pts/7
  expect(run(code, { type: CHAR, major: 1, minor: 1, access: R })).toBe(0); // /dev/mem
  expect(run(code, { type: BLOCK, major: 7, minor: 0, access: R })).toBe(0); // loop0
  expect(run(code, { type: BLOCK, major: 7, minor: 0, access: M })).toBe(1); // b *:* m
  expect(run(code, { type: CHAR, major: 99, minor: 1, access: M })).toBe(1); // c *:* m
  expect(run(code, { type: CHAR, major: 99, minor: 1, access: M | R })).toBe(0);
});

test("compileDeviceRules() denies everything for an empty list", () => {
  for (const q of allQueries()) expect(decide([], q)).toBe(0);
});

test("compileDeviceRules() lets a later deny take away one access kind only", () => {
  const rules: DeviceRule[] = [{ allow: true }, { allow: false, type: "c", major: 1, minor: 3, access: "w" }];
  expect(decide(rules, { type: CHAR, major: 1, minor: 3, access: R })).toBe(1);
  expect(decide(rules, { type: CHAR, major: 1, minor: 3, access: R | W })).toBe(0);
  expect(decide(rules, { type: CHAR, major: 1, minor: 2, access: R | W })).toBe(1);
  expect(decide(rules, { type: BLOCK, major: 1, minor: 3, access: W })).toBe(1);
});

test("compileDeviceRules() grants an access split over several rules", () => {
  const rules: DeviceRule[] = [
    { allow: true, type: "c", major: 4, minor: 1, access: "r" },
    { allow: true, type: "c", major: 4, minor: -1, access: "w" },
  ];
  expect(decide(rules, { type: CHAR, major: 4, minor: 1, access: R | W })).toBe(1);
  expect(decide(rules, { type: CHAR, major: 4, minor: 2, access: R | W })).toBe(0);
});

test("compileDeviceRules() rejects bad rules with the rule's index", () => {
  expect(() => compileDeviceRules([{ allow: true, access: "rx" }])).toThrow(/devices\/0: bad access/);
  expect(() => compileDeviceRules([{ allow: true }, { allow: true, type: "u" }])).toThrow(/devices\/1: bad type/);
  expect(() => compileDeviceRules([{ allow: true, type: "c", major: 2 ** 32 }])).toThrow(DokrustError);
});

test("compiled programs agree with the reference on random rule lists", () => {
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)]!;
  const queries = allQueries();
  for (let round = 0; round < 300; round++) {
    const rules: DeviceRule[] = Array.from({ length: rand(7) }, () => {
      const rule: DeviceRule = { allow: rand(2) === 0 };
      const type = pick([undefined, "a", "b", "c", "c", "b"]);
      if (type !== undefined) rule.type = type;
      const major = pick([undefined, -1, 0, 1, 2, 3]);
      if (major !== undefined) rule.major = major;
      const minor = pick([undefined, -1, 0, 1, 2, 3]);
      if (minor !== undefined) rule.minor = minor;
      const access = pick([undefined, "", "r", "w", "m", "rw", "rm", "wm", "rwm", "mwr"]);
      if (access !== undefined) rule.access = access;
      return rule;
    });
    const code = encodeProgram(compileDeviceRules(rules));
    for (const q of queries) {
      const got = run(code, q);
      if (got !== reference(rules, q)) throw new Error(`rules ${JSON.stringify(rules)} query ${JSON.stringify(q)}: got ${got}`);
    }
  }
});
