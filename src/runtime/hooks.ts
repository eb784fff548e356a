/**
 * OCI hooks: each one a program run with the container's state JSON on
 * its stdin, its own args (args[0] is its argv[0]) and env, killed when
 * its timeout (seconds) passes.
 */
import { DokrustError } from "../errors.ts";
import type { Hook } from "../spec/types.ts";

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
