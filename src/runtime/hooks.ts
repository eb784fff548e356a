/**
 * OCI hooks: each one a program run with the container's state JSON on
 * its stdin, its own args (args[0] is its argv[0]) and env, killed when
 * its timeout (seconds) passes.
 */
import { DokrustError, errnoName } from "../errors.ts";
import { hookFailure, type ExecutorReport } from "../plan/ops.ts";
import { OCI_VERSION } from "../spec/defaults.ts";
import type { Hook, Spec } from "../spec/types.ts";

function envObject(env: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of env ?? []) {
    const eq = entry.indexOf("=");
    if (eq > 0) out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return out;
}

/** Run one hook; throws a DokrustError naming the hook when it fails. */
export async function runHook(kind: string, hook: Hook, stateJson: string): Promise<void> {
  const what = `${kind} hook ${hook.path}`;
  let proc;
  try {
    proc = Bun.spawn([hook.path, ...(hook.args ?? []).slice(1)], {
      argv0: hook.args?.[0] ?? hook.path,
      env: envObject(hook.env),
      stdin: new TextEncoder().encode(stateJson),
      stdout: "pipe",
      stderr: "pipe",
    });
  } catch (err) {
    throw new DokrustError(`${what}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let timedOut = false;
  const timer = hook.timeout === undefined
    ? undefined
    : setTimeout(() => {
        timedOut = true;
        proc.kill("SIGKILL");
      }, hook.timeout * 1000);
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (timer) clearTimeout(timer);
  if (timedOut) throw new DokrustError(`${what}: timed out after ${hook.timeout} s`);
  if (code !== 0) {
    const output = `${out}${err}`.trim();
    const why = proc.signalCode ? `killed by ${proc.signalCode}` : `exited with status ${code}`;
    throw new DokrustError(`${what}: ${why}${output ? `: ${output}` : ""}`);
  }
}

/** Run a list of hooks in order; the first failure stops the rest. */
export async function runHooks(kind: string, hooks: readonly Hook[] | undefined, stateJson: string): Promise<void> {
  for (const hook of hooks ?? []) await runHook(kind, hook, stateJson);
}

/**
 * The state the in-container hooks (createContainer, startContainer) get,
 * cut around its pid for the executor to fill in (PlanContext.hookState):
 * the runtime-spec's state document, with runc's statuses (creating,
 * then created).
 */
export function hookStateParts(id: string, bundle: string, spec: Spec) {
  return (status: "creating" | "created") => {
    const head = JSON.stringify({ ociVersion: OCI_VERSION, id, status });
    const tail = JSON.stringify({ bundle, ...(spec.annotations ? { annotations: spec.annotations } : {}) });
    return { prefix: `${head.slice(0, -1)},"pid":`, suffix: `,${tail.slice(1)}` };
  };
}

/**
 * The error a container process reported through its exec fifo after
 * `start` (a startContainer hook, or a later step, failed).  Only the
 * hooks are named: `start` does not have the plan's steps.
 */
export function startFailure(hooks: readonly Hook[] | undefined, report: ExecutorReport): DokrustError {
  if (report.syscall === "hook") {
    const only = hooks?.length === 1 ? hooks[0] : undefined;
    return new DokrustError(`startContainer hook${only ? ` ${only.path}` : ""}: ${hookFailure(report.value, only?.timeout)}`);
  }
  return new DokrustError(`the container process failed at step ${report.step}: ${report.syscall}: ${errnoName(report.value)}`);
}
