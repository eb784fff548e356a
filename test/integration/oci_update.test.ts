/**
 * runc's `update` (live cgroup limits, remembered) and `events` (stats
 * as JSON lines, OOM events).  DOKRUST_TEST_RUNTIME=runc runs the same
 * tests against runc.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import type { Stats } from "../../src/cgroups/stats.ts";
import { IS_RUNC, OciSession } from "./oci_helper.ts";

const root = process.getuid?.() === 0;
const v1 = existsSync("/sys/fs/cgroup/memory/memory.limit_in_bytes");
const RUNTIME = IS_RUNC ? "/usr/sbin/runc" : new URL("../../bin/dokrust", import.meta.url).pathname;
let s: OciSession;

/**
 * `events ARGS` for at most `ms` (runc's keeps running after the
 * container stops; dokrust's ends then): the JSON records it printed.
 */
async function eventsFor(ms: number, args: string[]): Promise<Array<{ type: string; id: string }>> {
  const proc = Bun.spawn([RUNTIME, "--root", s.root, "events", ...args], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  const timer = setTimeout(() => proc.kill(), ms);
  const out = await new Response(proc.stdout).text();
  clearTimeout(timer);
  await proc.exited;
  return out.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as { type: string; id: string });
}

beforeEach(() => {
  s = new OciSession();
});
afterEach(async () => {
  await s.cleanup();
});

/** A v1 (or hybrid) cgroup file of the container, by controller. */
function cgroupFile(cgroupsPath: string, controller: string, file: string): string {
  return readFileSync(`/sys/fs/cgroup/${controller}${cgroupsPath}/${file}`, "utf8").trim();
}

async function running(patch?: Parameters<OciSession["bundle"]>[0]): Promise<{ id: string; cgroup: string; bundle: string }> {
  const id = s.id();
  let cgroup = "";
  const bundle = s.bundle((spec, dir) => {
    spec.linux!.resources = { ...spec.linux!.resources, memory: { limit: 256 * 2 ** 20 }, pids: { limit: 100 } };
    patch?.(spec, dir);
    cgroup = spec.linux!.cgroupsPath!;
  });
  await s.ok(["run", "-d", "--bundle", bundle, id]);
  return { id, cgroup, bundle };
}

async function stats(id: string): Promise<Stats> {
  const out = await s.ok(["events", "--stats", id]);
  expect(out.trim().split("\n")).toHaveLength(1);
  const record = JSON.parse(out) as { type: string; id: string; data: Stats };
  expect(record).toMatchObject({ type: "stats", id });
  return record.data;
}

describe.skipIf(!root || !v1)("oci update", () => {
  test("flags rewrite the cgroup files of a running container", async () => {
    const { id, cgroup } = await running();
    await s.ok(["update", "--memory", "100m", "--pids-limit", "50", "--cpu-share", "512", "--cpu-quota", "50000", "--cpu-period", "100000", "--cpuset-cpus", "0", id]);
    expect(cgroupFile(cgroup, "memory", "memory.limit_in_bytes")).toBe(String(100 * 2 ** 20));
    expect(cgroupFile(cgroup, "pids", "pids.max")).toBe("50");
    expect(cgroupFile(cgroup, "cpu", "cpu.shares")).toBe("512");
    expect(cgroupFile(cgroup, "cpu", "cpu.cfs_quota_us")).toBe("50000");
    expect(cgroupFile(cgroup, "cpu", "cpu.cfs_period_us")).toBe("100000");
    expect(cgroupFile(cgroup, "cpuset", "cpuset.cpus")).toBe("0");
    // Untouched settings stay.
    await s.ok(["update", "--pids-limit", "60", id]);
    expect(cgroupFile(cgroup, "memory", "memory.limit_in_bytes")).toBe(String(100 * 2 ** 20));
    expect(cgroupFile(cgroup, "pids", "pids.max")).toBe("60");
  });

  test("--resources takes linux.resources JSON from a file or stdin", async () => {
    const { id, cgroup, bundle } = await running();
    writeFileSync(`${bundle}/res.json`, JSON.stringify({ memory: { limit: 300 * 2 ** 20 }, pids: { limit: 77 } }));
    await s.ok(["update", "--resources", `${bundle}/res.json`, id]);
    expect(cgroupFile(cgroup, "memory", "memory.limit_in_bytes")).toBe(String(300 * 2 ** 20));
    expect(cgroupFile(cgroup, "pids", "pids.max")).toBe("77");
    const data = await stats(id);
    expect(data.memory.usage!.limit).toBe(300 * 2 ** 20);
    expect(data.pids.limit).toBe(77);
  });

  test("update of a stopped container fails", async () => {
    const { id } = await running();
    await s.ok(["kill", id, "KILL"]);
    await s.waitStatus(id, "stopped");
    expect((await s.rt(["update", "--pids-limit", "10", id])).code).not.toBe(0);
  });
});

describe.skipIf(!root || !v1)("oci events", () => {
  test("--stats prints one stats record with cpu, memory and pids", async () => {
    const { id } = await running();
    const data = await stats(id);
    expect(data.cpu.usage.total).toBeGreaterThan(0);
    expect(data.memory.usage!.usage).toBeGreaterThan(0);
    expect(data.memory.usage!.limit).toBe(256 * 2 ** 20);
    expect(data.pids.current).toBeGreaterThanOrEqual(1);
    expect(data.pids.limit).toBe(100);
    expect(Object.keys(data)).toEqual(expect.arrayContaining(["cpu", "memory", "pids", "blkio", "hugetlb"]));
  });

  test("without --stats a record comes every interval until the container stops", async () => {
    const { id } = await running((spec) => {
      spec.process!.args = ["sleep", "1"];
    });
    const records = await eventsFor(3000, ["--interval", "200ms", id]);
    expect(records.length).toBeGreaterThanOrEqual(2);
    for (const record of records) expect(record).toMatchObject({ type: "stats", id });
  });

  test("an OOM kill is reported as an oom event", async () => {
    const { id, bundle } = await running((spec) => {
      spec.linux!.resources!.memory = { limit: 16 * 2 ** 20, swap: 16 * 2 ** 20 };
      spec.process!.args = ["sh", "-c", "while [ ! -e /out/go ]; do sleep 0.05; done; sleep 0.5; head -c 200000000 /dev/zero | tr '\\0' a | sort > /dev/null; sleep 2"];
    });
    const events = eventsFor(8000, ["--interval", "10s", id]);
    await Bun.sleep(300);
    writeFileSync(`${bundle}/out/go`, "");
    expect((await events).map((r) => r.type)).toContain("oom");
  }, 30_000);
});
