/**
 * The seccomp compiler, checked by running its programs: a classic BPF
 * interpreter (below) evaluates them on struct seccomp_data the way the
 * kernel does, after the checks the kernel's loader makes.
 */
import { describe, expect, test } from "bun:test";
import { AUDIT_ARCH, X32_BIT, syscallTable, ARCHES } from "../../src/seccomp/arch.ts";
import { BPF, Assembler, MAX_INSNS } from "../../src/seccomp/bpf.ts";
import { ENOSYS, EPERM, SECCOMP_RET, compileSeccomp, type SeccompProfile } from "../../src/seccomp/compile.ts";
import { defaultProfile } from "../../src/seccomp/default.ts";
import { compareKernel, parseJsonExact, resolveProfile, type ProfileFile } from "../../src/seccomp/profile.ts";
import { parseSecurityOpts, profileForRun, seccompFeatures, seccompForSpec } from "../../src/seccomp/index.ts";
import { DEFAULT_CAPABILITIES } from "../../src/plan/linux.ts";
import { parseRunArgs } from "../../src/cli/dokrust.ts";
import { specFromOptions } from "../../src/spec/from-options.ts";
import { defaultSpec } from "../../src/spec/defaults.ts";

// ---------------------------------------------------------------------------
// A classic BPF interpreter for seccomp programs.

interface Data {
  nr: number;
  arch?: number;
  ip?: bigint;
  args?: Array<bigint | number>;
}

/** struct seccomp_data as the kernel lays it out (little-endian). */
function seccompData(d: Data): DataView {
  const view = new DataView(new ArrayBuffer(64));
  view.setInt32(0, d.nr, true);
  view.setUint32(4, d.arch ?? AUDIT_ARCH.X86_64, true);
  view.setBigUint64(8, d.ip ?? 0n, true);
  (d.args ?? []).forEach((a, i) => view.setBigUint64(16 + 8 * i, BigInt.asUintN(64, BigInt(a)), true));
  return view;
}

/** What the kernel's seccomp_check_filter and bpf_check_classic demand. */
function checkProgram(program: Uint8Array): void {
  expect(program.length % 8).toBe(0);
  const n = program.length / 8;
  expect(n).toBeGreaterThan(0);
  expect(n).toBeLessThanOrEqual(MAX_INSNS);
  const view = new DataView(program.buffer, program.byteOffset, program.byteLength);
  for (let pc = 0; pc < n; pc++) {
    const code = view.getUint16(pc * 8, true);
    const [jt, jf, k] = [view.getUint8(pc * 8 + 2), view.getUint8(pc * 8 + 3), view.getUint32(pc * 8 + 4, true)];
    expect(Object.values(BPF) as number[]).toContain(code);
    if (code === BPF.LD_W_ABS) expect(k % 4 === 0 && k < 64).toBe(true);
    if (code === BPF.JA) expect(pc + 1 + k).toBeLessThan(n);
    else if ((code & 0x07) === 0x05) expect(Math.max(pc + 1 + jt, pc + 1 + jf)).toBeLessThan(n);
  }
  expect(view.getUint16((n - 1) * 8, true)).toBe(BPF.RET_K);
}

/** Run a program on one call; returns the SECCOMP_RET_* value. */
function run(program: Uint8Array, d: Data): number {
  const data = seccompData(d);
  const view = new DataView(program.buffer, program.byteOffset, program.byteLength);
  let a = 0;
  for (let pc = 0, steps = 0; steps < 100_000; pc++, steps++) {
    const code = view.getUint16(pc * 8, true);
    const jt = view.getUint8(pc * 8 + 2);
    const jf = view.getUint8(pc * 8 + 3);
    const k = view.getUint32(pc * 8 + 4, true);
    switch (code) {
      case BPF.LD_W_ABS: a = data.getUint32(k, true); break;
      case BPF.ALU_AND_K: a = (a & k) >>> 0; break;
      case BPF.JA: pc += k; break;
      case BPF.JEQ_K: pc += a === k ? jt : jf; break;
      case BPF.JGT_K: pc += a > k ? jt : jf; break;
      case BPF.JGE_K: pc += a >= k ? jt : jf; break;
      case BPF.JSET_K: pc += (a & k) !== 0 ? jt : jf; break;
      case BPF.RET_K: return k;
      default: throw new Error(`unknown instruction ${code} at ${pc}`);
    }
  }
  throw new Error("the program did not return");
}

const errno = (n: number) => (SECCOMP_RET.ERRNO | n) >>> 0;
const x86 = (name: string) => syscallTable(ARCHES.SCMP_ARCH_X86_64!).get(name)!;
const i386 = (name: string) => syscallTable(ARCHES.SCMP_ARCH_X86!).get(name)!;
const x32 = (name: string) => syscallTable(ARCHES.SCMP_ARCH_X32!).get(name)!;
const arm64 = (name: string) => syscallTable(ARCHES.SCMP_ARCH_AARCH64!).get(name)!;

type Rule = NonNullable<SeccompProfile["syscalls"]>[number];

/** A profile of one rule. */
function oneRule(defaultAction: string, rule: Rule): SeccompProfile {
  return { defaultAction, syscalls: [rule] };
}

function compile(profile: SeccompProfile, native = "SCMP_ARCH_X86_64") {
  const out = compileSeccomp(profile, { native });
  checkProgram(out.program);
  return out;
}

// ---------------------------------------------------------------------------

describe("syscall tables", () => {
  test("x86_64, i386, x32 and arm64 numbers match the kernel's", () => {
    expect([x86("read"), x86("execve"), x86("clone3"), x86("openat2"), x86("listns")]).toEqual([0, 59, 435, 437, 470]);
    expect([i386("execve"), i386("socketcall"), i386("_llseek")]).toEqual([11, 102, 140]);
    expect([x32("read"), x32("execve"), x32("rt_sigaction")]).toEqual([X32_BIT, X32_BIT + 520, X32_BIT + 512]);
    expect([arm64("openat"), arm64("execve"), arm64("newfstatat"), arm64("clone3")]).toEqual([56, 221, 79, 435]);
    expect(arm64("open")).toBeUndefined();
    expect(i386("map_shadow_stack")).toBeUndefined();
  });
});

describe("compileSeccomp()", () => {
  const basic: SeccompProfile = {
    defaultAction: "SCMP_ACT_ERRNO",
    syscalls: [
      { names: ["read", "write"], action: "SCMP_ACT_ALLOW" },
      { names: ["getpid"], action: "SCMP_ACT_ERRNO", errnoRet: 99 },
      { names: ["kill"], action: "SCMP_ACT_KILL_PROCESS" },
      { names: ["tkill"], action: "SCMP_ACT_KILL" },
      { names: ["getuid"], action: "SCMP_ACT_TRAP" },
      { names: ["getgid"], action: "SCMP_ACT_TRACE", errnoRet: 7 },
      { names: ["getppid"], action: "SCMP_ACT_LOG" },
    ],
  };

  test("allows the listed calls and returns EPERM for the rest by default", () => {
    const { program, flags, warnings } = compile(basic);
    expect(run(program, { nr: x86("read") })).toBe(SECCOMP_RET.ALLOW);
    expect(run(program, { nr: x86("write") })).toBe(SECCOMP_RET.ALLOW);
    expect(run(program, { nr: x86("open") })).toBe(errno(EPERM));
    expect(run(program, { nr: 1 + x86("write") })).toBe(errno(EPERM));
    expect(flags).toBe(0);
    expect(warnings).toEqual([]);
  });

  test("maps every action to its SECCOMP_RET value, with errnoRet", () => {
    const { program } = compile(basic);
    expect(run(program, { nr: x86("getpid") })).toBe(errno(99));
    expect(run(program, { nr: x86("kill") })).toBe(SECCOMP_RET.KILL_PROCESS);
    expect(run(program, { nr: x86("tkill") })).toBe(SECCOMP_RET.KILL_THREAD);
    expect(run(program, { nr: x86("getuid") })).toBe(SECCOMP_RET.TRAP);
    expect(run(program, { nr: x86("getgid") })).toBe((SECCOMP_RET.TRACE | 7) >>> 0);
    expect(run(program, { nr: x86("getppid") })).toBe(SECCOMP_RET.LOG);
  });

  test("uses defaultErrnoRet and default actions other than ERRNO", () => {
    const withErrno = compile({ ...basic, defaultErrnoRet: 38 });
    expect(run(withErrno.program, { nr: x86("open") })).toBe(errno(38));
    const kill = compile({ defaultAction: "SCMP_ACT_KILL_PROCESS", syscalls: [{ names: ["read", "exit"], action: "SCMP_ACT_ALLOW" }] });
    expect(run(kill.program, { nr: x86("write") })).toBe(SECCOMP_RET.KILL_PROCESS);
    const allow = compile({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mount"], action: "SCMP_ACT_ERRNO" }] });
    expect(run(allow.program, { nr: x86("mount") })).toBe(errno(EPERM));
    expect(run(allow.program, { nr: x86("read") })).toBe(SECCOMP_RET.ALLOW);
  });

  test("gives calls newer than the profile ENOSYS unless the default lets calls through", () => {
    const { program } = compile(basic);
    // tkill (200) is the highest number the profile names on x86_64.
    expect(run(program, { nr: x86("tkill") + 1 })).toBe(errno(ENOSYS));
    expect(run(program, { nr: 1000 })).toBe(errno(ENOSYS));
    expect(run(program, { nr: -1 })).toBe(errno(ENOSYS));
    expect(run(program, { nr: x86("tkill") - 1 })).toBe(errno(EPERM));
    const allow = compile({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["read"], action: "SCMP_ACT_ERRNO" }] });
    expect(run(allow.program, { nr: 1000 })).toBe(SECCOMP_RET.ALLOW);
  });

  test("kills calls from an architecture outside the filter", () => {
    const { program } = compile(basic);
    expect(run(program, { nr: 3, arch: AUDIT_ARCH.I386 })).toBe(SECCOMP_RET.KILL_PROCESS);
    expect(run(program, { nr: 0, arch: AUDIT_ARCH.AARCH64 })).toBe(SECCOMP_RET.KILL_PROCESS);
    expect(run(program, { nr: 0, arch: 0 })).toBe(SECCOMP_RET.KILL_PROCESS);
  });

  test("treats x32 calls on x86_64 as a foreign architecture unless SCMP_ARCH_X32 is listed", () => {
    const without = compile(basic);
    expect(run(without.program, { nr: x32("read") })).toBe(SECCOMP_RET.KILL_PROCESS);
    const withX32 = compile({ ...basic, architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"] });
    expect(run(withX32.program, { nr: x32("read") })).toBe(SECCOMP_RET.ALLOW);
    expect(run(withX32.program, { nr: x32("open") })).toBe(errno(EPERM));
    expect(run(withX32.program, { nr: X32_BIT + 0x3000 })).toBe(errno(ENOSYS));
    expect(run(withX32.program, { nr: x86("read") })).toBe(SECCOMP_RET.ALLOW);
  });

  test("resolves names per architecture: i386 numbers under AUDIT_ARCH_I386", () => {
    const profile: SeccompProfile = {
      defaultAction: "SCMP_ACT_ERRNO",
      architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
      syscalls: [{ names: ["execve", "socketcall", "arch_prctl"], action: "SCMP_ACT_ALLOW" }],
    };
    const { program, warnings } = compile(profile);
    expect(warnings).toEqual([]);
    expect(run(program, { nr: i386("execve"), arch: AUDIT_ARCH.I386 })).toBe(SECCOMP_RET.ALLOW);
    expect(run(program, { nr: i386("socketcall"), arch: AUDIT_ARCH.I386 })).toBe(SECCOMP_RET.ALLOW);
    // 59 is execve on x86_64 but olduname on i386.
    expect(run(program, { nr: 59, arch: AUDIT_ARCH.I386 })).toBe(errno(EPERM));
    expect(run(program, { nr: 59 })).toBe(SECCOMP_RET.ALLOW);
  });

  test("compiles for arm64 when that is the machine", () => {
    const profile = oneRule("SCMP_ACT_ERRNO", { names: ["openat", "open"], action: "SCMP_ACT_ALLOW" });
    const { program } = compile(profile, "SCMP_ARCH_AARCH64");
    expect(run(program, { nr: arm64("openat"), arch: AUDIT_ARCH.AARCH64 })).toBe(SECCOMP_RET.ALLOW);
    expect(run(program, { nr: arm64("openat"), arch: AUDIT_ARCH.X86_64 })).toBe(SECCOMP_RET.KILL_PROCESS);
  });

  test("warns about and skips names no architecture knows, and architectures without a table", () => {
    const { program, warnings } = compile({
      defaultAction: "SCMP_ACT_ERRNO",
      architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_S390X"],
      syscalls: [{ names: ["read", "no_such_call", "cacheflush"], action: "SCMP_ACT_ALLOW" }],
    });
    expect(run(program, { nr: x86("read") })).toBe(SECCOMP_RET.ALLOW);
    expect(warnings).toHaveLength(2);
    expect(warnings.join("\n")).toContain('"no_such_call"');
    expect(warnings.join("\n")).toContain("SCMP_ARCH_S390X");
  });

  test("maps flags, and refuses unknown ones", () => {
    const flags = ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"];
    expect(compile({ ...basic, flags }).flags).toBe(7);
    expect(() => compile({ ...basic, flags: ["SECCOMP_FILTER_FLAG_BOGUS"] })).toThrow(/SECCOMP_FILTER_FLAG_BOGUS is not known/);
  });

  test("refuses what it cannot honour, naming the field", () => {
    expect(() => compile({ defaultAction: "SCMP_ACT_NOTIFY" })).toThrow(/SCMP_ACT_NOTIFY needs a seccomp agent/);
    const notify = oneRule("SCMP_ACT_ERRNO", { names: ["read"], action: "SCMP_ACT_NOTIFY" });
    expect(() => compile(notify)).toThrow(/syscalls\[0\]/);
    expect(() => compile({ defaultAction: "SCMP_ACT_NOPE" })).toThrow(/unknown action/);
    expect(() => compile({ defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_Z80"] })).toThrow(/unknown architecture/);
    const errnoOnAllow = oneRule("SCMP_ACT_ALLOW", { names: ["read"], action: "SCMP_ACT_ALLOW", errnoRet: 3 });
    expect(() => compile(errnoOnAllow)).toThrow(/errnoRet/);
    const arg = (a: object) => oneRule("SCMP_ACT_ALLOW", { names: ["read"], action: "SCMP_ACT_ERRNO", args: [a as never] });
    expect(() => compile(arg({ index: 6, value: 0, op: "SCMP_CMP_EQ" }))).toThrow(/index 6/);
    expect(() => compile(arg({ index: 0, value: 0, op: "SCMP_CMP_LIKE" }))).toThrow(/unknown operator/);
    expect(() => compile(arg({ index: 0, value: -1, op: "SCMP_CMP_EQ" }))).toThrow(/unsigned 64-bit/);
  });
});

describe("argument conditions", () => {
  const rule = (op: string, value: bigint | number, valueTwo: bigint | number = 0, index = 1): SeccompProfile => ({
    defaultAction: "SCMP_ACT_ALLOW",
    syscalls: [{ names: ["ioctl"], action: "SCMP_ACT_ERRNO", errnoRet: 42, args: [{ index, value, valueTwo, op }] }],
  });
  const decide = (profile: SeccompProfile, arg: bigint, index = 1) => {
    const args = [0n, 0n, 0n, 0n, 0n, 0n];
    args[index] = arg;
    return run(compile(profile).program, { nr: x86("ioctl"), args }) === errno(42);
  };
  const HI = 0x1_0000_0000n;
  // Values that differ only in the high word, only in the low word, and both.
  const samples = [0n, 1n, 5n, 0xffffffffn, HI, HI + 5n, 2n * HI, 5n * HI + 5n, (1n << 64n) - 1n, 1n << 63n];

  const ops: Array<[string, (a: bigint, v: bigint) => boolean]> = [
    ["SCMP_CMP_EQ", (a, v) => a === v],
    ["SCMP_CMP_NE", (a, v) => a !== v],
    ["SCMP_CMP_LT", (a, v) => a < v],
    ["SCMP_CMP_LE", (a, v) => a <= v],
    ["SCMP_CMP_GT", (a, v) => a > v],
    ["SCMP_CMP_GE", (a, v) => a >= v],
  ];
  for (const [op, holds] of ops) {
    test(`${op} compares all 64 bits`, () => {
      for (const v of [5n, HI + 5n, 0xffffffffn, (1n << 64n) - 1n]) {
        for (const a of samples) expect([op, a, v, decide(rule(op, v), a)]).toEqual([op, a, v, holds(a, v)]);
      }
    });
  }

  test("SCMP_CMP_MASKED_EQ tests (arg & value) == valueTwo on both halves", () => {
    const mask = 0xff00_0000_0000_00ffn;
    const profile = rule("SCMP_CMP_MASKED_EQ", mask, 0x1200_0000_0000_0034n);
    expect(decide(profile, 0x12ab_cdef_0123_4534n)).toBe(true);
    expect(decide(profile, 0x1300_0000_0000_0034n)).toBe(false);
    expect(decide(profile, 0x1200_0000_0000_0035n)).toBe(false);
    const clone = rule("SCMP_CMP_MASKED_EQ", 0x7e020000, 0, 0);
    expect(decide(clone, 0x11n | 0x100n, 0)).toBe(true);
    expect(decide(clone, 0x10000000n, 0)).toBe(false);
  });

  test("exact 64-bit values survive JSON: parseJsonExact keeps big integers", () => {
    const profile = parseJsonExact(
      '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["ioctl"],"action":"SCMP_ACT_ERRNO","errnoRet":42,' +
        '"args":[{"index":1,"value":9223372036854775807,"op":"SCMP_CMP_EQ"}]}]}',
    ) as SeccompProfile;
    expect(decide(profile, (1n << 63n) - 1n)).toBe(true);
    expect(decide(profile, 1n << 63n)).toBe(false);
    // Plain JSON.parse rounds 2^64-1 up to 2^64; it is read back as 2^64-1.
    expect(decide(rule("SCMP_CMP_EQ", 18446744073709551615), (1n << 64n) - 1n)).toBe(true);
  });

  test("conditions of one rule are ANDed; rules are tried in order and the first that holds decides", () => {
    const profile: SeccompProfile = {
      defaultAction: "SCMP_ACT_ALLOW",
      syscalls: [
        {
          names: ["ioctl"],
          action: "SCMP_ACT_ERRNO",
          errnoRet: 1,
          args: [{ index: 0, value: 1, op: "SCMP_CMP_EQ" }, { index: 1, value: 2, op: "SCMP_CMP_EQ" }],
        },
        { names: ["ioctl"], action: "SCMP_ACT_ERRNO", errnoRet: 2, args: [{ index: 0, value: 1, op: "SCMP_CMP_EQ" }] },
        { names: ["ioctl"], action: "SCMP_ACT_ERRNO", errnoRet: 3 },
        { names: ["ioctl"], action: "SCMP_ACT_ERRNO", errnoRet: 4, args: [{ index: 0, value: 9, op: "SCMP_CMP_EQ" }] },
      ],
    };
    const { program } = compile(profile);
    const call = (a0: number, a1: number) => run(program, { nr: x86("ioctl"), args: [a0, a1] });
    expect(call(1, 2)).toBe(errno(1));
    expect(call(1, 3)).toBe(errno(2));
    expect(call(9, 0)).toBe(errno(3));
    expect(run(program, { nr: x86("read") })).toBe(SECCOMP_RET.ALLOW);
  });

  test("several conditions on one argument are ORed, as runc does", () => {
    const profile: SeccompProfile = {
      defaultAction: "SCMP_ACT_ERRNO",
      syscalls: [
        { names: ["personality"], action: "SCMP_ACT_ALLOW", args: [0, 8].map((value) => ({ index: 0, value, op: "SCMP_CMP_EQ" })) },
      ],
    };
    const { program } = compile(profile);
    const call = (p: number) => run(program, { nr: x86("personality"), args: [p] });
    expect([call(0), call(8), call(9)]).toEqual([SECCOMP_RET.ALLOW, SECCOMP_RET.ALLOW, errno(EPERM)]);
  });

  test("a rule with the default action is skipped, as runc does", () => {
    const profile: SeccompProfile = {
      defaultAction: "SCMP_ACT_ERRNO",
      syscalls: [
        { names: ["ioctl"], action: "SCMP_ACT_ERRNO", args: [{ index: 0, value: 1, op: "SCMP_CMP_EQ" }] },
        { names: ["ioctl"], action: "SCMP_ACT_ALLOW" },
      ],
    };
    expect(run(compile(profile).program, { nr: x86("ioctl"), args: [1] })).toBe(SECCOMP_RET.ALLOW);
  });

  test("on 32-bit ABIs only the low half of an argument is compared", () => {
    const profile: SeccompProfile = {
      defaultAction: "SCMP_ACT_ALLOW",
      architectures: ["SCMP_ARCH_X86"],
      syscalls: [{ names: ["ioctl"], action: "SCMP_ACT_ERRNO", args: [{ index: 1, value: 0x1_0000_0005n, op: "SCMP_CMP_EQ" }] }],
    };
    const { program } = compile(profile);
    expect(run(program, { nr: i386("ioctl"), arch: AUDIT_ARCH.I386, args: [0, 5] })).toBe(errno(EPERM));
    expect(run(program, { nr: x86("ioctl"), args: [0, 5] })).toBe(SECCOMP_RET.ALLOW);
    expect(run(program, { nr: x86("ioctl"), args: [0, 0x1_0000_0005n] })).toBe(errno(EPERM));
  });
});

describe("long programs", () => {
  test("jumps beyond 255 instructions go through trampolines", () => {
    // Every call gets its own argument rule, so the tree's jumps span far more than 255 instructions.
    const names = [...syscallTable(ARCHES.SCMP_ARCH_X86_64!).keys()].slice(0, 300);
    const profile: SeccompProfile = {
      defaultAction: "SCMP_ACT_ERRNO",
      syscalls: names.map((name, i) => ({
        names: [name],
        action: "SCMP_ACT_ERRNO",
        errnoRet: 100 + i,
        args: [{ index: 0, value: i, op: "SCMP_CMP_EQ" }],
      })),
    };
    const { program } = compile(profile);
    expect(program.length / 8).toBeGreaterThan(1000);
    const view = new DataView(program.buffer);
    const jas = Array.from({ length: program.length / 8 }, (_, pc) => view.getUint16(pc * 8, true)).filter((c) => c === BPF.JA);
    expect(jas.length).toBeGreaterThan(0);
    names.forEach((name, i) => {
      expect(run(program, { nr: x86(name), args: [i] })).toBe(errno(100 + i));
      expect(run(program, { nr: x86(name), args: [i + 1] })).toBe(errno(EPERM));
    });
  });

  test("the assembler places a far true branch and a far false branch on trampolines", () => {
    const asm = new Assembler();
    const [t, f] = [asm.label(), asm.label()];
    asm.load(0);
    asm.jump(BPF.JEQ_K, 1, t, f);
    for (let i = 0; i < 300; i++) asm.ret(1000 + i);
    asm.place(t);
    asm.ret(1);
    for (let i = 0; i < 300; i++) asm.ret(2000 + i);
    asm.place(f);
    asm.ret(2);
    const program = asm.assemble();
    checkProgram(program);
    expect(run(program, { nr: 1 })).toBe(1);
    expect(run(program, { nr: 0 })).toBe(2);
  });

  test("a program beyond the kernel's 4096 instructions is refused", () => {
    const asm = new Assembler();
    for (let i = 0; i <= MAX_INSNS; i++) asm.ret(0);
    expect(() => asm.assemble()).toThrow(/limit of 4096/);
  });
});

describe("the default profile", () => {
  const program = (caps: readonly string[] = DEFAULT_CAPABILITIES) => compile(defaultProfile(caps, "SCMP_ARCH_X86_64"));

  test("compiles without warnings, in well under the kernel's limit", () => {
    const { program: p, warnings } = program();
    expect(warnings).toEqual([]);
    expect(p.length / 8).toBeLessThan(1500);
  });

  test("allows what ordinary programs need, on x86_64, i386 and x32", () => {
    const { program: p } = program();
    const ordinary = ["read", "openat", "execve", "mmap", "futex", "rt_sigaction", "exit_group", "wait4", "connect"];
    for (const name of [...ordinary, "getrandom", "rseq"]) {
      expect([name, run(p, { nr: x86(name) })]).toEqual([name, SECCOMP_RET.ALLOW]);
      expect([name, run(p, { nr: x32(name) })]).toEqual([name, SECCOMP_RET.ALLOW]);
    }
    for (const name of ["socketcall", "_llseek", "mmap2", "execve", "set_thread_area"]) {
      expect([name, run(p, { nr: i386(name), arch: AUDIT_ARCH.I386 })]).toEqual([name, SECCOMP_RET.ALLOW]);
    }
  });

  test("denies with EPERM what docker denies", () => {
    const { program: p } = program();
    const denied = ["mount", "umount2", "unshare", "setns", "keyctl", "add_key", "ptrace", "reboot", "init_module", "bpf"];
    for (const name of [...denied, "io_uring_setup", "userfaultfd", "open_by_handle_at", "sethostname", "kexec_load", "settimeofday"]) {
      expect([name, run(p, { nr: x86(name) })]).toEqual([name, errno(EPERM)]);
    }
  });

  test("clone may not make namespaces; clone3 answers ENOSYS so that libc falls back to clone", () => {
    const { program: p } = program();
    const SIGCHLD = 17;
    const CLONE_THREAD_FLAGS = 0x3d0f00;
    expect(run(p, { nr: x86("clone"), args: [SIGCHLD] })).toBe(SECCOMP_RET.ALLOW);
    expect(run(p, { nr: x86("clone"), args: [CLONE_THREAD_FLAGS] })).toBe(SECCOMP_RET.ALLOW);
    expect(run(p, { nr: x86("clone"), args: [0x10000000 | SIGCHLD] })).toBe(errno(EPERM));
    expect(run(p, { nr: x86("clone3") })).toBe(errno(ENOSYS));
  });

  test("personality allows the usual domains only; socket refuses AF_VSOCK", () => {
    const { program: p } = program();
    for (const persona of [0, 8, 0x20000, 0x20008, 0xffffffff]) {
      expect(run(p, { nr: x86("personality"), args: [persona] })).toBe(SECCOMP_RET.ALLOW);
    }
    expect(run(p, { nr: x86("personality"), args: [0x0040000] })).toBe(errno(EPERM)); // READ_IMPLIES_EXEC
    expect(run(p, { nr: x86("socket"), args: [2, 1, 0] })).toBe(SECCOMP_RET.ALLOW);
    expect(run(p, { nr: x86("socket"), args: [40, 1, 0] })).toBe(errno(EPERM));
  });

  test("capabilities unlock their calls: CAP_SYS_ADMIN mount and namespaces, CAP_SYS_PTRACE ptrace", () => {
    const { program: p } = program([...DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]);
    for (const name of ["mount", "umount2", "unshare", "setns", "sethostname", "ptrace", "process_vm_readv", "clone3"]) {
      expect([name, run(p, { nr: x86(name) })]).toEqual([name, SECCOMP_RET.ALLOW]);
    }
    expect(run(p, { nr: x86("clone"), args: [0x10000000] })).toBe(SECCOMP_RET.ALLOW);
    expect(run(p, { nr: x86("reboot") })).toBe(errno(EPERM));
  });

  test("calls newer than the profile get ENOSYS", () => {
    const { program: p } = program();
    expect(run(p, { nr: 600 })).toBe(errno(ENOSYS));
  });

  test("builds for arm64 without x86 names", () => {
    const { program: p, warnings } = compile(defaultProfile(DEFAULT_CAPABILITIES, "SCMP_ARCH_AARCH64"), "SCMP_ARCH_AARCH64");
    expect(warnings).toEqual([]);
    expect(run(p, { nr: arm64("openat"), arch: AUDIT_ARCH.AARCH64 })).toBe(SECCOMP_RET.ALLOW);
    expect(run(p, { nr: arm64("mount"), arch: AUDIT_ARCH.AARCH64 })).toBe(errno(EPERM));
  });
});

describe("profile files", () => {
  const docker: ProfileFile = {
    defaultAction: "SCMP_ACT_ERRNO",
    archMap: [{ architecture: "SCMP_ARCH_X86_64", subArchitectures: ["SCMP_ARCH_X86", "SCMP_ARCH_X32"] }],
    syscalls: [
      { names: ["read"], action: "SCMP_ACT_ALLOW" },
      { name: "write", action: "SCMP_ACT_ALLOW", comment: "one name" },
      { names: ["mount"], action: "SCMP_ACT_ALLOW", includes: { caps: ["CAP_SYS_ADMIN"] } },
      {
        names: ["clone"],
        action: "SCMP_ACT_ALLOW",
        excludes: { caps: ["CAP_SYS_ADMIN"] },
        args: [{ index: 0, value: 1, op: "SCMP_CMP_EQ" }],
      },
      { names: ["arch_prctl"], action: "SCMP_ACT_ALLOW", includes: { arches: ["amd64"] } },
      { names: ["open_tree"], action: "SCMP_ACT_ALLOW", includes: { minKernel: "99.0" } },
    ],
  };

  test("resolveProfile() applies docker's archMap, includes and excludes", () => {
    const plain = resolveProfile(docker, { capabilities: [], native: "SCMP_ARCH_X86_64", kernel: "6.1.0-18-amd64" });
    expect(plain.architectures).toEqual(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    expect(plain.syscalls!.map((r) => r.names[0])).toEqual(["read", "write", "clone", "arch_prctl"]);
    const admin = resolveProfile(docker, { capabilities: ["CAP_SYS_ADMIN"], native: "SCMP_ARCH_AARCH64", kernel: "99.1" });
    expect(admin.architectures).toBeUndefined();
    expect(admin.syscalls!.map((r) => r.names[0])).toEqual(["read", "write", "mount", "open_tree"]);
  });

  test("compareKernel() orders releases numerically", () => {
    expect(compareKernel("6.10.0", "6.9")).toBeGreaterThan(0);
    expect(compareKernel("4.8", "4.8.0-rc1")).toBe(0);
    expect(compareKernel("5.4.0-91-generic", "5.15")).toBeLessThan(0);
  });

  test("parseSecurityOpts() reads docker's spellings and refuses others", () => {
    expect(parseSecurityOpts([])).toEqual({ seccomp: { kind: "default" }, noNewPrivileges: false });
    const both = parseSecurityOpts(["seccomp=unconfined", "no-new-privileges"]);
    expect(both).toEqual({ seccomp: { kind: "unconfined" }, noNewPrivileges: true });
    expect(parseSecurityOpts(["no-new-privileges:true"]).noNewPrivileges).toBe(true);
    expect(parseSecurityOpts(["no-new-privileges=false"]).noNewPrivileges).toBe(false);
    const missing = () => parseSecurityOpts(["seccomp=/nonexistent/profile.json"]);
    expect(missing).toThrow(/read seccomp profile \/nonexistent\/profile.json: ENOENT/);
    expect(() => parseSecurityOpts(["apparmor=x"])).toThrow(/not supported/);
    expect(() => parseSecurityOpts(["no-new-privileges=maybe"])).toThrow(/true or false/);
  });

  test("profileForRun() and seccompForSpec(): default, unconfined, and big values kept exact", () => {
    expect(profileForRun({ kind: "unconfined" }, [])).toBeUndefined();
    const spec = defaultSpec();
    expect(seccompForSpec(spec)).toBeUndefined();
    spec.linux!.seccomp = profileForRun({ kind: "default" }, DEFAULT_CAPABILITIES)!;
    expect(seccompForSpec(spec)!.program.length).toBeGreaterThan(0);
    const file = parseJsonExact(
      '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["ioctl"],"action":"SCMP_ACT_ERRNO",' +
        '"args":[{"index":0,"value":9223372036854775807,"op":"SCMP_CMP_EQ"}]}]}',
    ) as ProfileFile;
    spec.linux!.seccomp = profileForRun({ kind: "file", path: "x", file }, [])!;
    expect(JSON.parse(JSON.stringify(spec)).linux.seccomp.syscalls[0].args[0].value).toBe("9223372036854775807");
    const { program } = seccompForSpec(spec)!;
    expect(run(program, { nr: x86("ioctl"), args: [(1n << 63n) - 1n] })).toBe(errno(EPERM));
    expect(run(program, { nr: x86("ioctl"), args: [1n << 63n] })).toBe(SECCOMP_RET.ALLOW);
  });

  test("the precompiled default program is the one the compiler makes, and its profile cannot be changed", () => {
    const profile = profileForRun({ kind: "default" }, DEFAULT_CAPABILITIES)!;
    const spec = defaultSpec();
    spec.linux!.seccomp = profile;
    expect(seccompForSpec(spec)!.program).toEqual(compileSeccomp(defaultProfile(DEFAULT_CAPABILITIES)).program);
    expect(Object.isFrozen(profile.syscalls![0]!.names)).toBe(true);
    // Another capability set is compiled on the spot.
    const admin = profileForRun({ kind: "default" }, [...DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"])!;
    expect(Object.isFrozen(admin)).toBe(false);
    expect(admin.syscalls![0]!.names).toContain("mount");
  });

  test("seccompFeatures() lists what the compiler takes", () => {
    const f = seccompFeatures();
    expect(f.enabled).toBe(true);
    expect(f.actions).not.toContain("SCMP_ACT_NOTIFY");
    expect(f.archs).toContain("SCMP_ARCH_X32");
    expect(f.supportedFlags).toEqual(["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]);
  });

  test("the dokrust command line puts the default profile in the spec, or none, and no_new_privs when asked", () => {
    const spec = (...args: string[]) => specFromOptions(parseRunArgs([...args, "--", "true"])!, "/", undefined);
    expect(spec().linux!.seccomp!.defaultAction).toBe("SCMP_ACT_ERRNO");
    expect(spec().process!.noNewPrivileges).toBeUndefined();
    expect(spec("--security-opt", "seccomp=unconfined").linux!.seccomp).toBeUndefined();
    expect(spec("--security-opt", "no-new-privileges").process!.noNewPrivileges).toBe(true);
    const admin = spec("--cap-add", "SYS_ADMIN").linux!.seccomp!;
    expect(admin.syscalls![0]!.names).toContain("mount");
  });
});
