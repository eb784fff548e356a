import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { cgroupManager } from "../../src/cgroups/manager.ts";
import { parseCgroupLayout, type CgroupLayout } from "../../src/cgroups/mounts.ts";
import { V1Manager } from "../../src/cgroups/v1.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(`${tmpdir()}/dokrust-test-cg-`);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
36 31 0:33 / /sys/fs/cgroup/cpu\\054cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
`;

test("parseCgroupLayout() tells hybrid, v1 and v2 hosts apart", () => {
  const hybrid = parseCgroupLayout(HYBRID);
  expect(hybrid.mode).toBe("hybrid");
  expect(hybrid.unified).toBe("/sys/fs/cgroup/unified");
  expect(hybrid.v1.map((h) => h.controllers)).toEqual([["cpu"], ["cpuset"], ["cpu", "cpuacct"], ["name=systemd"]]);
  expect(hybrid.v1[2]!.mount).toBe("/sys/fs/cgroup/cpu,cpuacct");
  expect(parseCgroupLayout(HYBRID.split("\n").slice(0, 3).join("\n")).mode).toBe("v1");
  expect(parseCgroupLayout("25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw").mode).toBe("v2");
});

/** A fake v2 tree: the files the kernel would show. */
function fakeV2(): CgroupLayout {
  writeFileSync(`${dir}/cgroup.controllers`, "cpu memory pids\n");
  writeFileSync(`${dir}/cgroup.subtree_control`, "");
  return { mode: "v2", v1: [], unified: dir };
}

function touchV2Files(cg: string) {
  for (const f of ["cpu.max", "cpu.weight", "memory.max", "memory.low", "memory.swap.max", "pids.max", "memory.high", "cgroup.procs"]) {
    writeFileSync(`${cg}/${f}`, "");
  }
}

test("the v2 manager enables controllers and writes translated limits", () => {
  const m = cgroupManager("/dokrust-test/c1", fakeV2());
  // The kernel gives a new cgroup directory its files; the fake tree
  // needs the intermediate one made by hand.
  mkdirSync(`${dir}/dokrust-test`);
  writeFileSync(`${dir}/dokrust-test/cgroup.subtree_control`, "");
  m.create();
  expect(readFileSync(`${dir}/cgroup.subtree_control`, "utf8")).toBe("+cpu +memory +pids");
  expect(readFileSync(`${dir}/dokrust-test/cgroup.subtree_control`, "utf8")).toBe("+cpu +memory +pids");
  const cg = `${dir}/dokrust-test/c1`;
  touchV2Files(cg);
  m.apply({ cpu: { quota: 50000, period: 100000, shares: 1024 }, memory: { limit: 1 << 20, swap: 3 << 20 }, pids: { limit: 9 } });
  expect(readFileSync(`${cg}/cpu.max`, "utf8")).toBe("50000 100000");
  expect(readFileSync(`${cg}/memory.max`, "utf8")).toBe(String(1 << 20));
  expect(readFileSync(`${cg}/memory.swap.max`, "utf8")).toBe(String(2 << 20));
  expect(readFileSync(`${cg}/pids.max`, "utf8")).toBe("9");
  m.applyQuota([{ controller: "memory", file: "memory.high", value: "4096" }]);
  expect(readFileSync(`${cg}/memory.high`, "utf8")).toBe("4096");
  expect(() => m.applyQuota([{ controller: "net_cls", file: "net_cls.classid", value: "1" }])).toThrow(/unknown cgroup controller net_cls/);
  expect(m.procsFiles).toEqual([`${cg}/cgroup.procs`]);
});

test("the v1 manager writes each controller's files in its own hierarchy", () => {
  for (const c of ["cpu", "pids", "memory"]) mkdirSync(`${dir}/${c}`);
  const layout: CgroupLayout = {
    mode: "v1",
    v1: ["cpu", "pids", "memory"].map((c) => ({ mount: `${dir}/${c}`, controllers: [c], root: "/" })),
  };
  const m = new V1Manager(layout, "/dokrust-test-x");
  m.create();
  for (const [c, f] of [["cpu", "cpu.cfs_quota_us"], ["cpu", "cpu.cfs_period_us"], ["pids", "pids.max"], ["memory", "memory.limit_in_bytes"]] as const) {
    writeFileSync(`${dir}/${c}/dokrust-test-x/${f}`, "");
  }
  m.apply({ cpu: { quota: 20000, period: 100000 }, pids: { limit: 0 } });
  expect(readFileSync(`${dir}/cpu/dokrust-test-x/cpu.cfs_quota_us`, "utf8")).toBe("20000");
  expect(readFileSync(`${dir}/pids/dokrust-test-x/pids.max`, "utf8")).toBe("max");
  m.applyQuota([{ controller: "memory", file: "memory.limit_in_bytes", value: "1048576" }]);
  expect(readFileSync(`${dir}/memory/dokrust-test-x/memory.limit_in_bytes`, "utf8")).toBe("1048576");
  expect(() => m.applyQuota([{ controller: "pids", file: "pids.nope", value: "1" }])).toThrow(/has no file pids.nope/);
  expect(() => m.applyQuota([{ controller: "blkio", file: "blkio.weight", value: "1" }])).toThrow(/unknown cgroup controller blkio/);
  expect(() => m.applyQuota([{ controller: "pids", file: "pids.max", value: "many" }])).toThrow(/takes a number/);
  expect(m.procsFiles).toEqual(["cpu", "pids", "memory"].map((c) => `${dir}/${c}/dokrust-test-x/cgroup.procs`));
});

test("cgroupManager() refuses paths that climb out of the hierarchy", () => {
  expect(() => cgroupManager("/a/../../etc", fakeV2())).toThrow(/must not contain/);
  expect(existsSync(`${dir}/a`)).toBe(false);
});
