import { expect, test } from "bun:test";
import { parseQuota, sharesToWeight, translateToV2 } from "../../src/cgroups/quota.ts";
import { UsageError } from "../../src/errors.ts";

test("parseQuota() splits entries joined by ::", () => {
  expect(parseQuota("cpu:cpu.cfs_quota_us:50000::pids:pids.max:20")).toEqual([
    { controller: "cpu", file: "cpu.cfs_quota_us", value: "50000" },
    { controller: "pids", file: "pids.max", value: "20" },
  ]);
});

test("parseQuota() rejects a wrong field count with the entry in the message", () => {
  expect(() => parseQuota("pids:pids.max")).toThrow(/pids:pids.max.*controller:file:value/);
  expect(() => parseQuota("pids:pids.max:1:2")).toThrow(UsageError);
  expect(() => parseQuota("pids::1")).toThrow(UsageError);
  expect(() => parseQuota("pids:../x:1")).toThrow(/bad file name/);
});

test("translateToV2() maps the well-known v1 files", () => {
  const entries = parseQuota("cpu:cpu.cfs_quota_us:50000::cpu:cpu.cfs_period_us:100000::memory:memory.limit_in_bytes:1048576::pids:pids.max:7");
  expect(new Map(translateToV2(entries))).toEqual(
    new Map([
      ["cpu.max", "50000 100000"],
      ["memory.max", "1048576"],
      ["pids.max", "7"],
    ]),
  );
  expect(translateToV2(parseQuota("memory:memory.limit_in_bytes:-1"))).toEqual([["memory.max", "max"]]);
  expect(translateToV2(parseQuota("cpu:cpu.shares:1024"))).toEqual([["cpu.weight", String(sharesToWeight(1024))]]);
  expect(translateToV2(parseQuota("memory:memory.limit_in_bytes:100::memory:memory.memsw.limit_in_bytes:300"))).toContainEqual([
    "memory.swap.max",
    "200",
  ]);
});

test("translateToV2() takes v2 names as they are and refuses v1-only files", () => {
  expect(translateToV2(parseQuota("memory:memory.high:5000"))).toEqual([["memory.high", "5000"]]);
  expect(() => translateToV2(parseQuota("cpu:cpu.rt_runtime_us:5"))).toThrow(/no cgroup v2 equivalent/);
  expect(() => translateToV2(parseQuota("pids:pids.max:lots"))).toThrow(/takes a number/);
});

test("sharesToWeight() follows runc's conversion at the ends of the range", () => {
  expect(sharesToWeight(2)).toBe(1);
  expect(sharesToWeight(262144)).toBe(10000);
});
