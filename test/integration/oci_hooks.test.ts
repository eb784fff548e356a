/**
 * The hooks that run inside the container's namespaces: createContainer
 * (after the mounts, before pivot_root, so paths are still the host's)
 * and startContainer (after start, in the container's root).
 * DOKRUST_TEST_RUNTIME=runc runs the same tests against runc; runc 1.1
 * hands these hooks the pid as the container sees it (1), dokrust the
 * host's, as the runtime-spec's state asks.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { IS_RUNC, OciSession } from "./oci_helper.ts";

const root = process.getuid?.() === 0;
let s: OciSession;

beforeEach(() => {
  s = new OciSession();
});
afterEach(async () => {
  await s.cleanup();
});

/** A hook that saves its stdin, mount namespace and working directory under `prefix`. */
function recorder(prefix: string) {
  return { path: "/bin/sh", args: ["sh", "-c", `cat > ${prefix}.json; readlink /proc/self/ns/mnt > ${prefix}.mnt; pwd > ${prefix}.cwd`] };
}

describe.skipIf(!root)("oci in-container hooks", () => {
  test("createContainer and startContainer hooks get the state, in the container's mount namespace", async () => {
    const id = s.id();
    const bundle = s.bundle((spec, dir) => {
      spec.process!.args = ["sh", "-c", "touch /out/ran; exec sleep 100"];
      spec.hooks = { createContainer: [recorder(`${dir}/create`)], startContainer: [recorder("/out/start")] };
      spec.annotations = { "org.dokrust.test": "yes" };
    });
    const hostMnt = readlinkSync("/proc/self/ns/mnt");
    await s.ok(["create", "--bundle", bundle, id]);
    const pid = (await s.state(id)).pid as number;
    const created = JSON.parse(readFileSync(`${bundle}/create.json`, "utf8"));
    expect(created).toMatchObject({ id, bundle, status: "creating", annotations: { "org.dokrust.test": "yes" } });
    if (!IS_RUNC) expect(created.pid).toBe(pid);
    const createMnt = readFileSync(`${bundle}/create.mnt`, "utf8").trim();
    expect(createMnt).toMatch(/^mnt:\[\d+\]$/);
    expect(createMnt).not.toBe(hostMnt);
    expect(readFileSync(`${bundle}/create.cwd`, "utf8").trim()).toBe(`${bundle}/rootfs`);
    expect(existsSync(`${bundle}/out/start.json`)).toBe(false);

    await s.ok(["start", id]);
    for (let i = 0; i < 250 && !existsSync(`${bundle}/out/ran`); i++) await Bun.sleep(20);
    const started = JSON.parse(readFileSync(`${bundle}/out/start.json`, "utf8"));
    expect(started).toMatchObject({ id, bundle, status: "created" });
    if (!IS_RUNC) expect(started.pid).toBe(pid);
    expect(readFileSync(`${bundle}/out/start.mnt`, "utf8").trim()).toBe(createMnt);
    expect(readlinkSync(`/proc/${pid}/ns/mnt`)).toBe(createMnt);
  });

  test("a failing createContainer hook fails create with one clear line and leaves nothing", async () => {
    const id = s.id();
    const bundle = s.bundle((spec) => {
      spec.hooks = { createContainer: [{ path: "/bin/sh", args: ["sh", "-c", "exit 3"] }] };
    });
    const r = await s.rt(["create", "--bundle", bundle, id]);
    expect(r.code).toBe(1);
    if (!IS_RUNC) {
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain('msg="createContainer hook /bin/sh: exited with status 3"');
    }
    expect((await s.ok(["list", "-q"])).trim()).toBe("");
    expect((await s.rt(["state", id])).code).toBe(1);
  });

  test("a createContainer hook past its timeout is killed and fails create", async () => {
    const id = s.id();
    const bundle = s.bundle((spec) => {
      spec.hooks = { createContainer: [{ path: "/bin/sleep", args: ["sleep", "20"], timeout: 1 }] };
    });
    const started = Date.now();
    const r = await s.rt(["create", "--bundle", bundle, id]);
    expect(r.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(10_000);
    if (!IS_RUNC) expect(r.stderr).toContain("createContainer hook /bin/sleep: timed out after 1 s");
    expect((await s.ok(["list", "-q"])).trim()).toBe("");
  });

  test("run in the foreground runs both hooks; a hook need not read a large state", async () => {
    const id = s.id();
    const bundle = s.bundle((spec, dir) => {
      spec.process!.args = ["sh", "-c", "cat /out/start-ran"];
      spec.annotations = { big: "x".repeat(300_000) };
      spec.hooks = {
        createContainer: [{ path: "/bin/sh", args: ["sh", "-c", `touch ${dir}/create-ran`] }],
        startContainer: [{ path: "/bin/sh", args: ["sh", "-c", "echo started > /out/start-ran"] }],
      };
    });
    const r = await s.rt(["run", "--bundle", bundle, id]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("started\n");
    expect(existsSync(`${bundle}/create-ran`)).toBe(true);
  });

  test("a failing startContainer hook fails start and the container stops without running its program", async () => {
    const id = s.id();
    const bundle = s.bundle((spec) => {
      spec.process!.args = ["sh", "-c", "touch /out/ran; exec sleep 100"];
      spec.hooks = { startContainer: [{ path: "/bin/sh", args: ["sh", "-c", "exit 4"] }] };
    });
    await s.ok(["create", "--bundle", bundle, id]);
    const r = await s.rt(["start", id]);
    // runc 1.1 reports success and the container just stops
    if (!IS_RUNC) {
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`cannot start container ${id}: startContainer hook /bin/sh: exited with status 4`);
    }
    await s.waitStatus(id, "stopped");
    expect(existsSync(`${bundle}/out/ran`)).toBe(false);
  });
});
