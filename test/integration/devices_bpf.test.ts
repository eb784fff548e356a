/**
 * The cgroup v2 device program, for real: compiled rules are loaded into
 * the kernel (its verifier must accept them), attached to a cgroup of the
 * test's own on the host's cgroup2 mount (on a hybrid host the unified
 * mount takes device programs even with no controllers), and a shell moved
 * into that cgroup finds the devices allowed and denied.  The device nodes
 * are the test's own, made with mknod in a temp dir; denied ones are only
 * opened read-only and closed.
 */
import { describe, expect, test } from "bun:test";
import { closeSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { compileDeviceRules, encodeProgram } from "../../src/cgroups/devices-bpf.ts";
import { V2Manager } from "../../src/cgroups/v2.ts";
import { installDeviceProgram, loadDeviceProgram } from "../../src/native/bpf.ts";
import { DEFAULT_DEVICE_RULES } from "../../src/spec/defaults.ts";
import type { DeviceRule } from "../../src/spec/types.ts";

/** The host's cgroup2 mount point, if any. */
function unifiedMount(): string | undefined {
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const [left, right] = line.split(" - ");
    if (right?.startsWith("cgroup2 ")) return left!.split(" ")[4];
  }
  return undefined;
}

const UNIFIED = unifiedMount();
const usable = process.getuid?.() === 0 && UNIFIED !== undefined && (process.arch === "x64" || process.arch === "arm64");

/** Run a shell script inside a fresh cgroup carrying the program for `rules`; its stdout+stderr. */
function inCgroup(rules: DeviceRule[], script: string): string {
  const dir = `${UNIFIED}/dokrust-test-${randomBytes(6).toString("hex")}`;
  mkdirSync(dir);
  try {
    installDeviceProgram(encodeProgram(compileDeviceRules(rules)), dir);
    const join = `echo $$ > ${dir}/cgroup.procs || exit 99\n`;
    const r = Bun.spawnSync(["/bin/sh", "-c", `${join}exec 2>&1\n${script}`], { timeout: 10_000 });
    if (r.exitCode === 99) throw new Error(`could not join ${dir}: ${r.stderr.toString()}`);
    return r.stdout.toString();
  } finally {
    // The shell has exited; the cgroup is empty and goes with its program.
    rmdirSync(dir);
  }
}

/** A temp dir holding device nodes made for the test. */
function withNodes(fn: (dir: string) => void): void {
  const dir = mkdtempSync("/tmp/dokrust-test-dev-");
  try {
    const make = Bun.spawnSync(["sh", "-c", "mknod null c 1 3 && mknod mem c 1 1 && mknod loop b 7 0"], { cwd: dir });
    expect(make.exitCode).toBe(0);
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(!usable)("cgroup v2 device program", () => {
  test("the kernel's verifier accepts compiled programs, docker's and random ones", () => {
    let seed = 777;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const lists: DeviceRule[][] = [[], [{ allow: true }], [{ allow: false }], DEFAULT_DEVICE_RULES];
    for (let i = 0; i < 40; i++) {
      lists.push(
        Array.from({ length: rand(8) }, () => ({
          allow: rand(2) === 0,
          type: ["a", "b", "c"][rand(3)]!,
          major: rand(4) - 1,
          minor: rand(4) - 1,
          access: ["", "r", "w", "m", "rw", "rwm"][rand(6)]!,
        })),
      );
    }
    for (const rules of lists) closeSync(loadDeviceProgram(encodeProgram(compileDeviceRules(rules))));
  });

  test("a process under docker's default rules reads /dev/null, may mknod, but cannot open mem or a block device", () => {
    withNodes((nodes) => {
      const out = inCgroup(
        DEFAULT_DEVICE_RULES,
        [
          "grep -q '^0::/dokrust-test-' /proc/self/cgroup && echo joined",
          `head -c 0 ${nodes}/null && echo null-ok`,
          `echo x > ${nodes}/null && echo null-write-ok`,
          `head -c 0 ${nodes}/mem`,
          `head -c 0 ${nodes}/loop`,
          `mknod ${nodes}/made c 99 1 && echo mknod-ok`,
        ].join("\n"),
      );
      expect(out).toContain("joined\n");
      expect(out).toContain("null-ok\n");
      expect(out).toContain("null-write-ok\n");
      expect(out).toMatch(/\/mem.*Operation not permitted/);
      expect(out).toMatch(/\/loop.*Operation not permitted/);
      expect(out).toContain("mknod-ok\n");
      expect(existsSync(`${nodes}/made`)).toBe(true);
    });
  });

  test("without an mknod rule, mknod is refused; a later deny takes write away only", () => {
    withNodes((nodes) => {
      const rules: DeviceRule[] = [
        { allow: false, access: "rwm" },
        { allow: true, type: "c", major: 1, minor: 3, access: "rw" },
        { allow: false, type: "c", major: 1, minor: 3, access: "w" },
      ];
      const out = inCgroup(
        rules,
        [`head -c 0 ${nodes}/null && echo read-ok`, `echo x > ${nodes}/null`, `mknod ${nodes}/made c 1 3`].join("\n"),
      );
      expect(out).toContain("read-ok\n");
      expect(out).toMatch(/\/null.*Operation not permitted/);
      expect(out).toMatch(/made.*Operation not permitted/);
      expect(existsSync(`${nodes}/made`)).toBe(false);
    });
  });

  test("V2Manager.apply() puts resources.devices on the container's cgroup", () => {
    withNodes((nodes) => {
      const cgroup = new V2Manager(UNIFIED!, `/dokrust-test-${randomBytes(6).toString("hex")}`);
      cgroup.create();
      try {
        cgroup.apply({ devices: DEFAULT_DEVICE_RULES });
        const script = `echo $$ > ${cgroup.dir}/cgroup.procs && exec 2>&1 && head -c 0 ${nodes}/null && head -c 0 ${nodes}/loop`;
        const r = Bun.spawnSync(["/bin/sh", "-c", script], { timeout: 10_000 });
        expect(r.stdout.toString()).toMatch(/\/loop.*Operation not permitted/);
        expect(r.exitCode).not.toBe(0);
      } finally {
        cgroup.destroy();
      }
      expect(cgroup.exists()).toBe(false);
    });
  });
});
