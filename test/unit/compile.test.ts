import { expect, test } from "bun:test";
import { compilePlan, execCandidates, type PlanContext } from "../../src/plan/compile.ts";
import { MS, CLONE } from "../../src/plan/linux.ts";
import { encodePlan, Op, Opt, CloneMode, type Step } from "../../src/plan/ops.ts";
import { parseMountOptions } from "../../src/plan/mounts.ts";
import { defaultSpec } from "../../src/spec/defaults.ts";
import type { Spec } from "../../src/spec/types.ts";

const ctx: PlanContext = {
  rootfs: "/srv/root",
  base: "/srv",
  isDirectory: (p) => !p.endsWith(".txt"),
  cgroupProcs: ["/sys/fs/cgroup/pids/x/cgroup.procs"],
  cloneMode: CloneMode.WAIT,
  preserveFds: 0,
};

function spec(patch: (s: Spec) => void = () => {}): Spec {
  const s = defaultSpec();
  s.process!.terminal = false;
  patch(s);
  return s;
}

const ops = (steps: Step[]) => steps.map((s) => s.op);

test("compilePlan() joins cgroups, then clones with every new namespace", () => {
  const steps = compilePlan(spec(), ctx);
  expect(steps[0]!.op).toBe(Op.CGROUP_JOIN);
  const clone = steps.find((s) => s.op === Op.CLONE)!;
  expect(Number(clone.args[0])).toBe(CLONE.NEWPID | CLONE.NEWNET | CLONE.NEWIPC | CLONE.NEWUTS | CLONE.NEWNS | CLONE.NEWCGROUP);
});

test("compilePlan() builds the mount tree before pivot_root and masks after it", () => {
  const steps = compilePlan(spec(), ctx);
  const pivot = ops(steps).indexOf(Op.PIVOT);
  const firstMask = ops(steps).indexOf(Op.MASK);
  expect(steps[steps.findIndex((s) => s.op === Op.CLONE) + 1]!.args).toEqual(["", "/", "", MS.REC | MS.PRIVATE, "", 0]);
  expect(ops(steps).lastIndexOf(Op.MOUNT, pivot)).toBeGreaterThan(ops(steps).indexOf(Op.ROOT));
  expect(firstMask).toBeGreaterThan(pivot);
  expect(steps.findIndex((s) => s.op === Op.MKNOD)).toBeLessThan(pivot);
});

test("compilePlan() puts seccomp last with no_new_privs, first without", () => {
  const program = new Uint8Array(8);
  const withNnp = compilePlan(spec(), { ...ctx, seccomp: { program, flags: 0 } });
  expect(ops(withNnp).slice(-2)).toEqual([Op.SECCOMP, Op.EXEC]);
  const without = compilePlan(spec((s) => (s.process!.noNewPrivileges = false)), { ...ctx, seccomp: { program, flags: 0 } });
  expect(ops(without).indexOf(Op.SECCOMP)).toBeLessThan(ops(without).indexOf(Op.USER));
});

test("compilePlan() binds a file source onto a file target and remounts it read-only", () => {
  const steps = compilePlan(
    spec((s) => s.mounts!.push({ source: "data.txt", destination: "/etc/data", type: "bind", options: ["rbind", "ro"] })),
    ctx,
  );
  const bind = steps.find((s) => s.op === Op.MOUNT && s.args[0] === "/srv/data.txt")!;
  expect(bind.args[3]).toBe(MS.BIND | MS.REC);
  expect(bind.args[5]).toBe(Opt.IN_ROOT | Opt.MKFILE);
  const remount = steps[steps.indexOf(bind) + 1]!;
  expect(remount.op).toBe(Op.REMOUNT);
  expect(Number(remount.args[1]) & MS.RDONLY).toBe(MS.RDONLY);
});

test("compilePlan() refuses what cannot be done, before anything runs", () => {
  expect(() => compilePlan(spec((s) => (s.process!.args = [])), ctx)).toThrow(/process.args/);
  expect(() => compilePlan(spec((s) => s.mounts!.push({ destination: "relative", type: "tmpfs" })), ctx)).toThrow(/absolute/);
  expect(() => compilePlan(spec((s) => (s.linux!.sysctl = { "kernel.panic": "1" })), ctx)).toThrow(/kernel.panic/);
  expect(() =>
    compilePlan(spec((s) => (s.process!.rlimits = [{ type: "RLIMIT_NOFILE", soft: 10, hard: 5 }])), ctx),
  ).toThrow(/soft limit/);
  expect(() => compilePlan(spec((s) => (s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== "uts"))), ctx)).toThrow(
    /uts namespace/,
  );
});

test("compilePlan() accepts namespaced sysctls and sets them after the pivot", () => {
  const steps = compilePlan(spec((s) => (s.linux!.sysctl = { "net.ipv4.ip_forward": "1" })), ctx);
  const write = steps.find((s) => s.op === Op.WRITE)!;
  expect(write.args.slice(0, 2)).toEqual(["/proc/sys/net/ipv4/ip_forward", "1"]);
  expect(steps.indexOf(write)).toBeGreaterThan(ops(steps).indexOf(Op.PIVOT));
});

test("execCandidates() searches the container's PATH", () => {
  expect(execCandidates("sh", ["PATH=/bin:/usr/bin"])).toEqual(["/bin/sh", "/usr/bin/sh"]);
  expect(execCandidates("./x", ["PATH=/bin"])).toEqual(["./x"]);
  expect(execCandidates("sh", [])[0]).toBe("/usr/local/sbin/sh");
});

test("parseMountOptions() separates flags, propagation and data", () => {
  expect(parseMountOptions(["nosuid", "rprivate", "mode=755", "size=1m", "ro"])).toEqual({
    flags: MS.NOSUID | MS.RDONLY,
    propagation: MS.PRIVATE | MS.REC,
    data: ["mode=755", "size=1m"],
    bind: false,
  });
});

test("encodePlan() writes the header, lengths and NUL-terminated strings", () => {
  const bytes = encodePlan([{ op: Op.HOSTNAME, args: ["ab"], what: "" }, { op: Op.UMASK, args: [0o22], what: "" }]);
  const view = new DataView(bytes.buffer);
  expect(new TextDecoder().decode(bytes.subarray(0, 4))).toBe("DKP1");
  expect(view.getUint32(4, true)).toBe(bytes.length);
  expect(view.getUint32(8, true)).toBe(2);
  expect(view.getUint32(12, true)).toBe(Op.HOSTNAME);
  expect(view.getUint32(20, true)).toBe(3);
  expect([...bytes.subarray(24, 27)]).toEqual([0x61, 0x62, 0]);
  expect(view.getUint32(35, true)).toBe(8);
  expect(view.getBigUint64(39, true)).toBe(0o22n);
});
