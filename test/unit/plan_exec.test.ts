import { expect, test } from "bun:test";
import { compileExecPlan, type ExecContext } from "../../src/plan/exec.ts";
import { CLONE, capabilityMask } from "../../src/plan/linux.ts";
import { CloneMode, encodePlan, Op, Opt, type Step } from "../../src/plan/ops.ts";
import { defaultSpec } from "../../src/spec/defaults.ts";
import type { Process, Spec } from "../../src/spec/types.ts";

const ctx: ExecContext = {
  initPid: 4242,
  namespaces: ["mount", "pid", "network", "ipc", "uts", "cgroup"],
  cgroupProcs: ["/sys/fs/cgroup/pids/x/cgroup.procs", "/sys/fs/cgroup/memory/x/cgroup.procs"],
  cloneMode: CloneMode.WAIT,
  preserveFds: 0,
};

function spec(patch: (s: Spec) => void = () => {}): Spec {
  const s = defaultSpec();
  patch(s);
  return s;
}

function proc(patch: (p: Process) => void = () => {}): Process {
  const p = structuredClone(spec().process!);
  p.args = ["ps"];
  patch(p);
  return p;
}

const ops = (steps: Step[]) => steps.map((s) => s.op);

test("compileExecPlan() notes the cgroups, joins pid and time, clones, then the child joins user first and mount last", () => {
  const steps = compileExecPlan(spec(), proc(), { ...ctx, namespaces: [...ctx.namespaces, "user", "time"] });
  expect(steps.slice(0, 2).map((s) => s.args[0])).toEqual([...ctx.cgroupProcs]);
  const clone = ops(steps).indexOf(Op.CLONE);
  expect(steps[clone]!.args).toEqual([0, "", "", "", CloneMode.WAIT]);
  const setns = (from: number, to: number) => steps.slice(from, to).filter((s) => s.op === Op.SETNS).map((s) => s.args[0]);
  expect(setns(0, clone)).toEqual(["pid", "time"].map((n) => `/proc/4242/ns/${n}`));
  expect(setns(clone, steps.length)).toEqual(["user", "ipc", "uts", "net", "cgroup", "mnt"].map((n) => `/proc/4242/ns/${n}`));
  expect(steps.find((s) => s.args[0] === "/proc/4242/ns/mnt")!.args[1]).toBe(CLONE.NEWNS);
  expect(steps[clone + 7]!.op).toBe(Op.FIND_EXEC);
});

test("compileExecPlan() joins only the namespaces the container has of its own", () => {
  const steps = compileExecPlan(spec(), proc(), { ...ctx, namespaces: ["mount"] });
  expect(steps.filter((s) => s.op === Op.SETNS).map((s) => s.args[0])).toEqual(["/proc/4242/ns/mnt"]);
});

test("compileExecPlan() detaches with -d", () => {
  const steps = compileExecPlan(spec(), proc(), { ...ctx, cloneMode: CloneMode.DETACH });
  expect(steps.find((s) => s.op === Op.CLONE)!.args[4]).toBe(CloneMode.DETACH);
});

test("compileExecPlan() sets the process up in order and execs it last", () => {
  const steps = compileExecPlan(spec(), proc((p) => {
    p.rlimits = [{ type: "RLIMIT_NOFILE", soft: 100, hard: 200 }];
    p.noNewPrivileges = true;
  }), { ...ctx, seccomp: { program: new Uint8Array(8), flags: 0 } });
  const after = ops(steps).slice(ops(steps).lastIndexOf(Op.SETNS) + 1);
  expect(after).toEqual([
    Op.FIND_EXEC, Op.CLOSE_FDS, Op.RLIMIT, Op.CAP_BOUNDING, Op.USER, Op.CAPS, Op.UMASK, Op.CHDIR, Op.NO_NEW_PRIVS, Op.SECCOMP, Op.EXEC,
  ]);
  expect(steps.at(-1)!.args).toEqual([1, "ps", ...proc().env!]);
  expect(steps.find((s) => s.op === Op.FIND_EXEC)!.args).toContain("/bin/ps");
});

test("compileExecPlan() loads seccomp before dropping privileges without no_new_privs", () => {
  const steps = compileExecPlan(spec(), proc((p) => (p.noNewPrivileges = false)), { ...ctx, seccomp: { program: new Uint8Array(8), flags: 0 } });
  expect(ops(steps).indexOf(Op.SECCOMP)).toBeLessThan(ops(steps).indexOf(Op.USER));
  expect(ops(steps)).not.toContain(Op.NO_NEW_PRIVS);
});

test("compileExecPlan() takes ids and capabilities from the process", () => {
  const steps = compileExecPlan(spec(), proc((p) => {
    p.user = { uid: 1000, gid: 1001, additionalGids: [5, 6], umask: 0o077 };
    p.capabilities = { bounding: ["CAP_KILL"], effective: ["CAP_KILL"], permitted: ["CAP_KILL"] };
    p.cwd = "/srv";
  }), ctx);
  const user = steps.find((s) => s.op === Op.USER)!;
  expect(user.args.slice(0, 2)).toEqual([1000, 1001]);
  expect([...new Uint32Array((user.args[2] as Uint8Array).buffer)]).toEqual([5, 6]);
  expect(user.args[3]).toBe(0);
  expect(steps.find((s) => s.op === Op.CAPS)!.args).toEqual([capabilityMask(["CAP_KILL"]), capabilityMask(["CAP_KILL"]), 0n, 0n]);
  expect(steps.find((s) => s.op === Op.UMASK)!.args).toEqual([0o077]);
  expect(steps.find((s) => s.op === Op.CHDIR)!.args).toEqual(["/srv"]);
});

test("compileExecPlan() leaves groups alone in a user namespace without gid mappings", () => {
  const steps = compileExecPlan(spec(), proc(), { ...ctx, namespaces: ["user", "mount"] });
  expect(steps.find((s) => s.op === Op.USER)!.args[3]).toBe(Opt.NO_SETGROUPS);
});

test("compileExecPlan() opens a terminal in the container's root without touching /dev/console", () => {
  const steps = compileExecPlan(spec(), proc(), { ...ctx, preserveFds: 2, terminal: { sendFd: 5, rows: 30, cols: 100 } });
  const afterJoin = ops(steps).lastIndexOf(Op.SETNS);
  expect(steps[afterJoin]!.args[0]).toBe("/proc/4242/ns/mnt");
  expect(steps[afterJoin + 1]).toMatchObject({ op: Op.ROOT, args: ["/"] });
  expect(steps[afterJoin + 2]).toMatchObject({ op: Op.TTY, args: [5, 30, 100, Opt.NO_CONSOLE] });
  expect(steps.find((s) => s.op === Op.CLOSE_FDS)!.args).toEqual([5]);
  expect(() => encodePlan(steps)).not.toThrow();
});

test("compileExecPlan() refuses an empty command, a relative cwd and unknown rlimits", () => {
  expect(() => compileExecPlan(spec(), proc((p) => (p.args = [])), ctx)).toThrow("process.args");
  expect(() => compileExecPlan(spec(), proc((p) => (p.cwd = "tmp")), ctx)).toThrow("process.cwd");
  expect(() => compileExecPlan(spec(), proc((p) => (p.rlimits = [{ type: "RLIMIT_NOPE", soft: 1, hard: 1 }])), ctx)).toThrow("RLIMIT_NOPE");
  expect(() => compileExecPlan(spec(), proc(), { ...ctx, namespaces: ["nope"] })).toThrow("nope");
});
