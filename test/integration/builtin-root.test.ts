/**
 * The built-in root: with no -r and no ../rootfs, the main job still
 * runs, on a minimal root made of the host's /usr (read-only), a fresh
 * /etc and a tmpfs /tmp, and dokrust says so on stderr.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { dokrust, parseMountinfo, ready, sh, tempDir, useLeakCheck } from "./helpers.ts";

useLeakCheck();

/** A fresh working directory whose parent has no rootfs. */
function noRootfsCwd(): string {
  const dir = tempDir("builtin");
  const cwd = `${dir}/a`;
  Bun.spawnSync(["mkdir", cwd]);
  expect(existsSync(`${dir}/rootfs`)).toBe(false);
  return cwd;
}

describe.skipIf(!ready)("built-in root", () => {
  test("the main job: hostname; id; ps, with one notice line on stderr", async () => {
    const r = await dokrust(sh("hostname; id; ps"), { cwd: noRootfsCwd() });
    expect(r.code).toBe(0);
    const notice = r.stderr.trimEnd().split("\n");
    expect(notice).toHaveLength(1);
    expect(notice[0]).toMatch(/^dokrust: no rootfs given.*host's \/usr/);
    const [hostname, id, header, ...ps] = r.stdout.trimEnd().split("\n");
    expect(hostname).toBe("dokka");
    expect(id).toMatch(/^uid=0\(root\) gid=0\(root\)/);
    expect(header).toMatch(/PID/);
    // its own pid namespace: the shell is pid 1, and ps sees only itself besides
    expect(ps).toHaveLength(2);
    expect(ps[0]).toMatch(/^\s*1\s.*\bsh$/);
    expect(ps[1]).toMatch(/\bps$/);
  });

  test("/usr is read-only, /etc is fresh, /tmp is a writable tmpfs", async () => {
    const script = [
      "touch /usr/dokrust-test 2>/dev/null; echo usr=$?",
      "touch /etc/dokrust-test 2>/dev/null; echo etc=$?",
      "echo x > /tmp/file && cat /tmp/file",
      "cat /etc/passwd",
      "cat /proc/self/mountinfo",
    ].join("; ");
    const r = await dokrust(sh(script), { cwd: noRootfsCwd() });
    expect(r.code).toBe(0);
    expect(r.stdout).toStartWith("usr=1\netc=1\nx\nroot:x:0:0:");
    // /etc is dokrust's, not the host's
    expect(r.stdout).not.toContain(readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l && !/^(root|nobody):/.test(l)) ?? "\0");
    const mounts = parseMountinfo(r.stdout);
    const at = (p: string) => mounts.find((m) => m.point === p);
    expect(at("/")?.fstype).toBe("tmpfs");
    expect(at("/usr")?.options).toContain("ro");
    expect(at("/usr")?.root).toBe("/usr");
    expect(at("/etc")?.options).toContain("ro");
    expect(at("/tmp")?.fstype).toBe("tmpfs");
    expect(at("/tmp")?.options).toContain("rw");
  });

  test("the options work on the built-in root too", async () => {
    const r = await dokrust(["-n", "builtin", "-e", "X=1", "-u", "1000:1000", ...sh("hostname; echo $X; id -u; cat /etc/hostname")], { cwd: noRootfsCwd() });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("builtin\n1\n1000\nbuiltin\n");
  });
});
