/**
 * No leaks under load (issue 7, promise 1): N create/start/kill/delete
 * cycles through the OCI face and N `dokrust -r <busybox> --net none --
 * true` runs, 4 at a time, leave no state directory, cgroup directory,
 * host mount, process, network link or nftables rule behind, and the fd
 * counts of long-running processes (a detached container's monitor
 * serving `exec` and `logs` all along, a foreground `dokrust` waiting for
 * its container) stay flat.
 *
 * N is 20 in CI (40 containers, a few seconds); DOKRUST_LONG=1 runs 500
 * of each.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { descendants, fdCount, LONG, pool, ready, StressSession } from "./stress_helper.ts";

const N = LONG ? 500 : 20;
const s = new StressSession();

beforeAll(() => {
  if (ready) s.setUp();
});
afterAll(async () => {
  if (ready) await s.tearDown();
});

/** One OCI lifecycle: create, start, kill, wait for stopped, delete. */
async function ociCycle(bundle: string): Promise<void> {
  const id = s.id();
  await s.ok(s.oci(["create", "--bundle", bundle, id]), `create ${id}`);
  await s.ok(s.oci(["start", id]), `start ${id}`);
  await s.ok(s.oci(["kill", id, "KILL"]), `kill ${id}`);
  for (let i = 0; ; i++) {
    const state = JSON.parse(await s.ok(s.oci(["state", id]), `state ${id}`)) as { status: string };
    if (state.status === "stopped") break;
    if (i > 250) throw new Error(`${id} did not stop`);
    await Bun.sleep(20);
  }
  await s.ok(s.oci(["delete", id]), `delete ${id}`);
}

function monitorPid(id: string): number {
  const state = JSON.parse(readFileSync(`${s.root}/${id}/state.json`, "utf8")) as { dokrust: { monitorPid: number } };
  return state.dokrust.monitorPid;
}

describe.skipIf(!ready)("load", () => {
  test(`${N} OCI create/start/kill/delete cycles and ${N} dokrust runs, 4 at a time, leave nothing behind; long-running fd counts stay flat`, async () => {
    const started = Date.now();
    const bundle = s.bundle(["sleep", "100"]);
    const rootfs = `${s.bundle(["true"])}/rootfs`; // a private copy for the dokrust face

    // long-running processes: a detached container (its monitor), a foreground dokrust
    const detachedId = (await s.ok(s.dokrust(["-d", "-r", rootfs, "--net", "none", "--", "sh", "-c", "echo up; sleep 1000"]), "dokrust -d")).trim();
    const monitor = monitorPid(detachedId);
    let foreground = 0;
    const long = s.dokrust(["-r", rootfs, "--net", "none", "--", "sleep", "1000"], { onStart: (pid) => (foreground = pid), timeoutMs: 600_000 });
    for (let i = 0; i < 200 && !(foreground && descendants(foreground).length >= 2); i++) await Bun.sleep(10);
    await Bun.sleep(100);
    const before = { monitor: fdCount(monitor), foreground: fdCount(foreground) };

    const jobs: Array<() => Promise<void>> = [];
    for (let i = 0; i < N; i++) {
      jobs.push(() => ociCycle(bundle));
      jobs.push(async () => {
        await s.ok(s.dokrust(["-r", rootfs, "--net", "none", "--", "true"]), "dokrust -- true");
      });
      // keep the monitor busy: exec and logs connect to it
      if (i % 4 === 0) jobs.push(async () => void (await s.ok(s.dokrust(["exec", detachedId, "true"]), "dokrust exec")));
      if (i % 4 === 2) jobs.push(async () => expect(await s.ok(s.dokrust(["logs", detachedId]), "dokrust logs")).toBe("up\n"));
    }
    await pool(jobs, 4);

    const after = { monitor: fdCount(monitor), foreground: fdCount(foreground) };
    expect(after).toEqual(before);
    await s.ok(s.dokrust(["rm", "-f", detachedId]), "dokrust rm -f");
    process.kill(foreground, "SIGTERM"); // forwarded; sleep as pid 1 ignores it
    const fg = descendants(foreground).at(-1);
    if (fg) process.kill(fg, "SIGKILL");
    expect((await long).code).toBe(137);
    // the checker saw every container it checks for (+2: the long-running ones)
    expect(s.seen.size).toBeGreaterThanOrEqual(2 * N + 2);
    expect(await s.leaks()).toEqual([]);
    const seconds = (Date.now() - started) / 1000;
    console.log(`load: ${2 * N} containers in ${seconds.toFixed(1)} s`);
  }, LONG ? 3_600_000 : 120_000);
});
