import { expect, test } from "bun:test";
import { compilePlan, type PlanContext } from "../../src/plan/compile.ts";
import { CloneMode, HookStatus, hookFailure, Op, type Step } from "../../src/plan/ops.ts";
import { hookStateParts } from "../../src/runtime/hooks.ts";
import { defaultSpec } from "../../src/spec/defaults.ts";
import type { Spec } from "../../src/spec/types.ts";

const ctx: PlanContext = {
  rootfs: "/srv/root",
  base: "/srv",
  isDirectory: () => true,
  cgroupProcs: [],
  cloneMode: CloneMode.DETACH,
  execFifo: "/run/x/exec.fifo",
  preserveFds: 0,
  hookState: (status) => ({ prefix: `{"status":"${status}","pid":`, suffix: "}" }),
};

function spec(): Spec {
  const s = defaultSpec();
  s.process!.terminal = false;
  s.hooks = {
    createContainer: [{ path: "/usr/bin/cc", args: ["cc", "-x"], env: ["A=1"], timeout: 2 }],
    startContainer: [{ path: "/sc" }],
  };
  return s;
}

const ops = (steps: Step[]) => steps.map((s) => s.op);

test("compilePlan() runs createContainer hooks right before pivot_root", () => {
  const steps = compilePlan(spec(), ctx);
  const hook = ops(steps).indexOf(Op.HOOK);
  expect(ops(steps)[hook + 1]).toBe(Op.PIVOT);
  expect(steps[hook]!.args).toEqual(["/usr/bin/cc", 2, '{"status":"creating","pid":', "}", 2, "cc", "-x", "A=1"]);
  expect(steps[hook]!.what).toBe("createContainer hook /usr/bin/cc");
});

test("compilePlan() runs startContainer hooks right after the wait for start", () => {
  const steps = compilePlan(spec(), ctx);
  const hook = ops(steps).lastIndexOf(Op.HOOK);
  expect(ops(steps)[hook - 1]).toBe(Op.WAIT);
  // no args: argv[0] is the path; no timeout: 0
  expect(steps[hook]!.args).toEqual(["/sc", 0, '{"status":"created","pid":', "}", 1, "/sc"]);
});

test("compilePlan() leaves the in-container hooks out without a hookState", () => {
  const { hookState: _, ...plain } = ctx;
  expect(ops(compilePlan(spec(), plain))).not.toContain(Op.HOOK);
});

test("hookStateParts() cuts the state JSON around its pid", () => {
  const s = spec();
  s.annotations = { a: "b" };
  const { prefix, suffix } = hookStateParts("c1", "/b", s)("creating");
  expect(JSON.parse(`${prefix}42${suffix}`)).toEqual({ ociVersion: expect.any(String), id: "c1", status: "creating", pid: 42, bundle: "/b", annotations: { a: "b" } });
});

test("hookFailure() words exits, signals and timeouts", () => {
  expect(hookFailure(HookStatus.EXITED | 3)).toBe("exited with status 3");
  expect(hookFailure(HookStatus.SIGNALED | 9)).toBe("killed by signal 9");
  expect(hookFailure(110, 2)).toBe("timed out after 2 s");
});

test("HookStatus matches native/plan.h", async () => {
  const header = await Bun.file(new URL("../../native/plan.h", import.meta.url)).text();
  expect(header).toContain(`#define DK_HOOK_EXITED 0x${HookStatus.EXITED.toString(16)}\n`);
  expect(header).toContain(`#define DK_HOOK_SIGNALED 0x${HookStatus.SIGNALED.toString(16)}\n`);
});
