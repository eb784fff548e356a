/**
 * Bad input: each case gets one line on stderr naming the problem, exit
 * 125, and leaves nothing behind (the leak check after each test: no
 * state, cgroup directory, mount or process).
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { BIN, BUSYBOX, capabilities, dokrust, ready, sh, start, stateRoot, tempDir, tempPath, useLeakCheck } from "./helpers.ts";

useLeakCheck();

async function expectRejected(args: string[], problem: RegExp): Promise<void> {
  const r = await dokrust([...args, ...sh("echo should not run")]);
  expect(r.stdout).toBe("");
  const line = r.stderr.trimEnd();
  expect(line.split("\n")).toHaveLength(1);
  // dokrust's own words: lowercase, as its messages are
  expect(line).toMatch(/^dokrust: [^A-Z]/);
  expect(line).toMatch(problem);
  expect(r.code).toBe(125);
}

describe.skipIf(!ready)("bad input", () => {
  test("a missing rootfs", async () => {
    const missing = tempPath("missing");
    await expectRejected(["-r", missing], new RegExp(`rootfs ${missing} does not exist`));
  });

  test("a rootfs that is not a directory", async () => {
    const file = tempPath("file");
    writeFileSync(file, "");
    await expectRejected(["-r", file], new RegExp(`rootfs ${file} is not a directory`));
  });

  const quotas: Array<[string, string, RegExp]> = [
    ["too few fields", "pids:pids.max", /pids:pids\.max.*controller:file:value/],
    ["too many fields", "pids:pids.max:50:60", /controller:file:value/],
    ["an empty entry between ::", "pids:pids.max:50::", /controller:file:value/],
    ["a bad entry after a good one", "pids:pids.max:50::cpu", /"cpu".*controller:file:value/],
    ["an unknown controller", "nosuch:nosuch.max:1", /unknown cgroup controller nosuch/],
    ["an unknown file", "pids:pids.nosuch:1", /pids controller has no file pids\.nosuch/],
    ["a file of another controller", "pids:memory.limit_in_bytes:1", /pids.*memory\.limit_in_bytes/],
    ["a non-numeric value", "pids:pids.max:many", /pids\.max.*many/],
    ["a non-numeric cpu value", "cpu:cpu.cfs_quota_us:half", /cpu\.cfs_quota_us.*half/],
  ];
  for (const [what, spec, problem] of quotas) {
    test(`-q with ${what}`, async () => {
      await expectRejected(["-r", BUSYBOX, "-q", spec], problem);
    });
  }

  test("-m with a missing source", async () => {
    const missing = tempPath("missing");
    await expectRejected(["-r", BUSYBOX, "-m", `${missing}:/data`], new RegExp(`source ${missing} does not exist`));
  });

  test("-m with a relative target", async () => {
    const dir = tempDir("src");
    await expectRejected(["-r", BUSYBOX, "-m", `${dir}:data`], /target data must be an absolute path/);
  });

  test("-m with .. in the target", async () => {
    const dir = tempDir("src");
    await expectRejected(["-r", BUSYBOX, "-m", `${dir}:/a/../../etc`], /\.\./);
  });

  test("-m onto the container's root or into its procfs", async () => {
    const dir = tempDir("src");
    await expectRejected(["-r", BUSYBOX, "-m", `${dir}:/`], /root of the container cannot be a bind target/);
    await expectRejected(["-r", BUSYBOX, "-m", `${dir}:/proc`], /\/proc is inside the container's procfs/);
    await expectRejected(["-r", BUSYBOX, "-m", `${dir}:/proc/sys/kernel`], /procfs/);
  });

  test("-it when the input is not a terminal", async () => {
    await expectRejected(["-r", BUSYBOX, "-it"], /-it: the input is not a terminal/);
  });

  test("--cpus above the host's CPU count", async () => {
    await expectRejected(["-r", BUSYBOX, "--cpus", "1e9"], /--cpus 1e9: this host has \d+ CPUs/);
  });

  test("a hostname longer than 64 bytes", async () => {
    const long = `${"a".repeat(32)}.${"b".repeat(32)}`;
    await expectRejected(["-r", BUSYBOX, "-n", long], /hostname .* longer than 64 bytes/);
  });

  for (const bad of ["bad_name", "with space", "-dash", "dot..dot", "ünï"]) {
    test(`a hostname with invalid characters: ${JSON.stringify(bad)}`, async () => {
      await expectRejected(["-r", BUSYBOX, `--hostname=${bad}`], /hostname .* may hold only/);
    });
  }

  test("an unknown option", async () => {
    await expectRejected(["-r", BUSYBOX, "--no-such-option"], /unknown option --no-such-option/);
  });

  test("an option without its value", async () => {
    const r = await dokrust(["-r", BUSYBOX, "-n"]);
    expect(r.stderr).toMatch(/^dokrust: option -n, --hostname needs a value/);
    expect(r.code).toBe(125);
  });

  test("an unknown capability", async () => {
    await expectRejected(["-r", BUSYBOX, "--cap-add", "FLY"], /--cap-add FLY: unknown capability/);
  });

  const own = capabilities(readFileSync("/proc/self/status", "utf8")).CapBnd ?? 0n;
  const missingCap = [["SYS_RESOURCE", 24], ["SYS_ADMIN", 21], ["SYS_MODULE", 16]].find(([, bit]) => !((own >> BigInt(bit!)) & 1n));
  test.skipIf(!missingCap)("--cap-add of a capability dokrust does not hold itself", async () => {
    await expectRejected(["-r", BUSYBOX, "--cap-add", String(missingCap?.[0])], /does not hold/);
  });

  test("docker options with bad values", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["-u", "root"], /-u root.*numeric/],
      [["-w", "relative"], /-w relative.*absolute/],
      [["-e", "NOVALUE"], /-e NOVALUE.*KEY=VALUE/],
      [["--memory", "lots"], /--memory lots/],
      [["--cpus", "0"], /--cpus 0/],
      [["--pids-limit", "1.5"], /--pids-limit 1\.5/],
    ];
    for (const [args, problem] of cases) await expectRejected(["-r", BUSYBOX, ...args], problem);
  });

  test("not root: says that root is needed", async () => {
    const r = await start(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BIN, "-r", BUSYBOX, ...sh("true")], {
      env: { DOKRUST_ROOT: stateRoot() },
      cwd: "/",
    }).result;
    expect(r.stdout).toBe("");
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/must run as root/);
    expect(r.code).toBe(125);
  });
});
