/**
 * cgroups: each container gets a cgroup of its own, -q and docker's
 * limits are written to the real cgroup files (read back from the host
 * while the container runs), the pid limit holds, and the cgroup is gone
 * when the container ends.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { BUSYBOX, findContainer, isV1, ready, sh, startDokrust, useLeakCheck, type Running } from "./helpers.ts";

useLeakCheck();

/** Start a container that waits on stdin, so the test decides when it ends. */
async function waiting(args: string[]): Promise<{ run: Running; dir: (controller: string) => string; pid: number }> {
  const run = startDokrust(["-i", "-r", BUSYBOX, ...args, ...sh("echo ready; read line; echo bye")], { stdin: "pipe" });
  await run.waitFor("ready");
  const container = await findContainer(run);
  return { run, dir: container.cgroupDir, pid: container.pid };
}

async function finish(run: Running): Promise<void> {
  run.write("\n");
  run.closeStdin();
  const r = await run.result;
  expect(r.stderr).toBe("");
  expect(r.stdout).toBe("ready\nbye\n");
  expect(r.code).toBe(0);
}

const read = (dir: string, file: string) => readFileSync(`${dir}/${file}`, "utf8").trim();

describe.skipIf(!ready)("cgroups", () => {
  test("the container has a cgroup of its own, is its root inside, and the cgroup goes when it ends", async () => {
    const { run, dir, pid } = await waiting([]);
    const pids = dir("pids");
    expect(pids).toMatch(/\/dokrust-[^/]+$/);
    expect(read(pids, "cgroup.procs").split("\n")).toContain(String(pid));
    // the cgroup namespace is rooted at the container's cgroup
    const inside = readFileSync(`/proc/${pid}/cgroup`, "utf8");
    expect(inside).toContain("dokrust-");
    await finish(run);
    expect(existsSync(pids)).toBe(false);
  });

  test("inside, /proc/self/cgroup shows the namespace root", async () => {
    const run = startDokrust(["-r", BUSYBOX, ...sh("cat /proc/self/cgroup")]);
    const r = await run.result;
    expect(r.code).toBe(0);
    for (const line of r.stdout.trim().split("\n")) expect(line).toMatch(/:\/$/);
  });

  test("-q pids:pids.max:50 is written to the container's pids cgroup", async () => {
    const { run, dir } = await waiting(["-q", "pids:pids.max:50"]);
    expect(read(dir("pids"), "pids.max")).toBe("50");
    await finish(run);
  });

  test("-q takes several entries joined by ::, and repeated -q", async () => {
    const v1 = isV1("cpu") && isV1("memory");
    const args = v1
      ? ["-q", "pids:pids.max:60::cpu:cpu.shares:512", "-q", "memory:memory.limit_in_bytes:67108864"]
      : ["-q", "pids:pids.max:60::cpu:cpu.weight:50", "-q", "memory:memory.max:67108864"];
    const { run, dir } = await waiting(args);
    expect(read(dir("pids"), "pids.max")).toBe("60");
    if (v1) {
      expect(read(dir("cpu"), "cpu.shares")).toBe("512");
      expect(read(dir("memory"), "memory.limit_in_bytes")).toBe("67108864");
    } else {
      expect(read(dir("cpu"), "cpu.weight")).toBe("50");
      expect(read(dir("memory"), "memory.max")).toBe("67108864");
    }
    await finish(run);
  });

  test("--pids-limit, --memory and --cpus are written to the cgroup files", async () => {
    const { run, dir } = await waiting(["--pids-limit", "30", "--memory", "64m", "--cpus", "1.5"]);
    expect(read(dir("pids"), "pids.max")).toBe("30");
    if (isV1("memory")) expect(read(dir("memory"), "memory.limit_in_bytes")).toBe(String(64 * 1024 * 1024));
    else expect(read(dir("memory"), "memory.max")).toBe(String(64 * 1024 * 1024));
    if (isV1("cpu")) {
      expect(read(dir("cpu"), "cpu.cfs_quota_us")).toBe("150000");
      expect(read(dir("cpu"), "cpu.cfs_period_us")).toBe("100000");
    } else {
      expect(read(dir("cpu"), "cpu.max")).toBe("150000 100000");
    }
    await finish(run);
  });

  test("the pid limit is enforced: forking stops at the limit", async () => {
    // The inner shell starts sleepers until fork fails; the outer one
    // (pid 1) survives it and counts what runs, with builtins only.
    const script = 'sh -c "for i in \\$(seq 30); do sleep 5 & echo started; done"; set -- /proc/[0-9]*; echo "procs $#"';
    const run = startDokrust(["-r", BUSYBOX, "--pids-limit", "10", ...sh(script)]);
    const r = await run.result;
    expect(r.code).toBe(0);
    const started = r.stdout.split("\n").filter((l) => l === "started").length;
    expect(started).toBeGreaterThan(0);
    expect(started).toBeLessThan(10);
    expect(r.stderr).toContain("can't fork");
    const procs = Number(/procs (\d+)/.exec(r.stdout)?.[1]);
    expect(procs).toBeGreaterThan(started);
    expect(procs).toBeLessThanOrEqual(10);
  });

  // The outer executor (native/build/dokrust-exec) joins the cgroup
  // before clone() and stays there waiting, so it counts against
  // pids.max: --pids-limit 1 cannot start at all (clone: EAGAIN), and
  // --pids-limit 2 cannot fork once.  Needs native/exec.c (see report).
  test("the pid limit counts the container's processes only", async () => {
    const { run, dir } = await waiting(["--pids-limit", "2"]);
    expect(read(dir("pids"), "pids.current")).toBe("1");
    await finish(run);
    const r = await startDokrust(["-r", BUSYBOX, "--pids-limit", "2", ...sh("echo $(echo forked)")]).result;
    expect(r.stdout).toBe("forked\n");
    expect(r.code).toBe(0);
  });

  // With swap the process would page out rather than be killed.
  const noSwap = readFileSync("/proc/swaps", "utf8").trim().split("\n").length <= 1;
  test.skipIf(!noSwap)("the memory limit is enforced: a process above it is killed", async () => {
    // 16 MiB limit; the shell builds a string well above it.
    const script = 'x=0123456789abcdef; while :; do x="$x$x"; done';
    const r = await startDokrust(["-r", BUSYBOX, "--memory", "16m", ...sh(script)]).result;
    expect(r.code).toBe(137);
  });
});
