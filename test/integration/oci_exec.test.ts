/**
 * runc's `exec`: a new process in a running container's namespaces and
 * cgroup, with the container's process settings plus the command line's,
 * or a whole process from --process.  DOKRUST_TEST_RUNTIME=runc runs the
 * same tests against runc.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { IS_RUNC, OciSession } from "./oci_helper.ts";

const root = process.getuid?.() === 0;
const dokrustOnly = IS_RUNC ? test.skip : test;
let s: OciSession;

beforeEach(() => {
  s = new OciSession();
});
afterEach(async () => {
  await s.cleanup();
});

/** A running container (sleep) and its id and bundle. */
async function running(patch?: Parameters<OciSession["bundle"]>[0]): Promise<{ id: string; bundle: string; pid: number }> {
  const id = s.id();
  const bundle = s.bundle(patch);
  await s.ok(["run", "-d", "--bundle", bundle, id]);
  return { id, bundle, pid: (await s.state(id)).pid as number };
}

/** The capability mask of a /proc/<pid>/status line such as CapEff. */
function capMask(status: string, field: string): bigint {
  const m = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, "m").exec(status);
  if (!m) throw new Error(`no ${field} in ${status}`);
  return BigInt(`0x${m[1]}`);
}

const CAP_SYS_ADMIN = 21n;
const CAP_NET_ADMIN = 12n;
const CAP_KILL = 5n;

describe.skipIf(!root)("oci exec", () => {
  test("the process gets the container's env plus --env, --cwd and --user", async () => {
    const { id } = await running((spec) => {
      spec.process!.env = [...(spec.process!.env ?? []), "FROM_CONFIG=yes"];
    });
    const out = await s.ok(["exec", "--env", "FOO=bar", "--env", "BAZ=qux", "--cwd", "/tmp", "--user", "1000:1001", id, "sh", "-c", 'echo "$FROM_CONFIG $FOO $BAZ"; pwd; id -u; id -g']);
    expect(out).toBe("yes bar qux\n/tmp\n1000\n1001\n");
  });

  test("--additional-gids adds supplementary groups", async () => {
    const { id } = await running();
    const out = await s.ok(["exec", "--user", "1000:1000", "--additional-gids", "20", "--additional-gids", "30", id, "sh", "-c", "grep ^Groups: /proc/self/status"]);
    expect(out.trim().split(/\s+/).slice(1).map(Number).sort((a, b) => a - b)).toEqual([20, 30]);
  });

  test("capabilities are the container's, --cap adds to them", async () => {
    const { id, pid } = await running();
    const init = readFileSync(`/proc/${pid}/status`, "utf8");
    const plain = await s.ok(["exec", id, "cat", "/proc/self/status"]);
    for (const field of ["CapEff", "CapPrm", "CapBnd"]) expect(capMask(plain, field)).toBe(capMask(init, field));
    expect(capMask(plain, "CapEff") & (1n << CAP_SYS_ADMIN)).toBe(0n);
    expect(capMask(plain, "CapEff") & (1n << CAP_KILL)).not.toBe(0n);
    const added = await s.ok(["exec", "--cap", "CAP_SYS_ADMIN", "--cap", "CAP_NET_ADMIN", id, "cat", "/proc/self/status"]);
    for (const field of ["CapEff", "CapPrm", "CapBnd"]) {
      expect(capMask(added, field)).toBe(capMask(init, field) | (1n << CAP_SYS_ADMIN) | (1n << CAP_NET_ADMIN));
    }
  });

  test("the process is in the container's pid, mount and other namespaces", async () => {
    const { id, pid } = await running();
    const ps = await s.ok(["exec", id, "ps", "-o", "pid,args"]);
    expect(ps).toMatch(/^\s*1\s+sleep 100$/m);
    const ns = await s.ok(["exec", id, "sh", "-c", "for n in pid mnt net ipc uts cgroup; do readlink /proc/self/ns/$n; done"]);
    const want = ["pid", "mnt", "net", "ipc", "uts", "cgroup"].map((n) => readlinkSync(`/proc/${pid}/ns/${n}`));
    expect(ns.trim().split("\n")).toEqual(want);
    // The container's root: its /etc/hostname-free busybox tree, and the /out bind.
    expect(await s.ok(["exec", id, "sh", "-c", "test -d /out && test -x /bin/busybox && echo root-ok"])).toBe("root-ok\n");
  });

  test("exec joins a container's user namespace first, then the others it owns", async () => {
    const { id, pid } = await running((spec, dir) => {
      chmodSync(dir, 0o755); // the mapped root must reach its rootfs
      spec.mounts = spec.mounts!.filter((m) => m.destination !== "/out"); // and could not create /out in it
      spec.linux!.namespaces!.push({ type: "user" });
      spec.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      spec.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    });
    const out = await s.ok(["exec", "--user", "5:6", "--additional-gids", "7", id, "sh", "-c", "id -u; id -g; cat /proc/self/uid_map; readlink /proc/self/ns/user; ps -o pid,args | awk '$1 == 1'"]);
    const [uid, gid, map, userns, init] = out.trim().split("\n");
    expect([uid, gid]).toEqual(["5", "6"]);
    expect(map!.trim().split(/\s+/)).toEqual(["0", "100000", "65536"]);
    expect(userns).toBe(readlinkSync(`/proc/${pid}/ns/user`));
    expect(init!.trim()).toBe("1 sleep 100");
  });

  test("the exit status of the process is the runtime's", async () => {
    const { id } = await running();
    expect((await s.rt(["exec", id, "sh", "-c", "exit 3"])).code).toBe(3);
    expect((await s.rt(["exec", id, "true"])).code).toBe(0);
    expect((await s.rt(["exec", id, "sh", "-c", "kill -KILL $$"])).code).toBe(137);
  });

  test("a program that is not there fails with runc's status and wording", async () => {
    const { id } = await running();
    const missing = await s.rt(["exec", id, "dokrust-no-such-program"]);
    expect(missing.code).toBe(255);
    expect(missing.stderr).toContain("executable file not found in $PATH");
    const dir = await s.rt(["exec", id, "/etc"]);
    expect(dir.code).toBe(255);
    expect(dir.stderr).toContain("permission denied");
  });

  test("-d returns at once and --pid-file names the process", async () => {
    const { id, bundle, pid } = await running();
    const pidFile = `${bundle}/exec.pid`;
    await s.ok(["exec", "-d", "--pid-file", pidFile, id, "sh", "-c", "echo started > /out/started; exec sleep 100"]);
    const child = Number(readFileSync(pidFile, "utf8"));
    expect(child).toBeGreaterThan(0);
    for (let i = 0; i < 250 && !existsSync(`${bundle}/out/started`); i++) await Bun.sleep(20);
    expect(readFileSync(`${bundle}/out/started`, "utf8")).toBe("started\n");
    expect(readlinkSync(`/proc/${child}/ns/pid`)).toBe(readlinkSync(`/proc/${pid}/ns/pid`));
    expect(JSON.parse(await s.ok(["ps", "--format", "json", id]))).toContain(child);
  });

  test("--process runs a whole process.json", async () => {
    const { id, bundle } = await running();
    const file = `${bundle}/process.json`;
    const proc = {
      terminal: false,
      user: { uid: 1234, gid: 4321 },
      args: ["sh", "-c", "echo $ONLY; id -u; id -g; pwd; umask"],
      env: ["PATH=/bin", "ONLY=from-process-json"],
      cwd: "/out",
      capabilities: { bounding: ["CAP_KILL"], effective: [], permitted: [] },
      noNewPrivileges: true,
      user_umask_note: "unknown fields are ignored",
    };
    writeFileSync(file, JSON.stringify(proc));
    const out = await s.ok(["exec", "--process", file, id]);
    expect(out).toBe("from-process-json\n1234\n4321\n/out\n0022\n");
  });

  test("--no-new-privs sets no_new_privs", async () => {
    const { id } = await running((spec) => {
      spec.process!.noNewPrivileges = false;
    });
    expect(await s.ok(["exec", id, "grep", "NoNewPrivs", "/proc/self/status"])).toMatch(/NoNewPrivs:\s+0/);
    expect(await s.ok(["exec", "--no-new-privs", id, "grep", "NoNewPrivs", "/proc/self/status"])).toMatch(/NoNewPrivs:\s+1/);
  });

  test("exec into a stopped or paused container fails", async () => {
    const { id } = await running();
    await s.ok(["pause", id]);
    const paused = await s.rt(["exec", id, "true"]);
    expect(paused.code).toBe(255);
    expect(paused.stderr).toContain("paused");
    await s.ok(["resume", id]);
    await s.ok(["kill", id, "KILL"]);
    await s.waitStatus(id, "stopped");
    const stopped = await s.rt(["exec", id, "true"]);
    expect(stopped.code).toBe(255);
    expect(stopped.stderr).toContain("stopped");
  });

  dokrustOnly("exec into a created container fails (runc allows it)", async () => {
    const id = s.id();
    await s.ok(["create", "--bundle", s.bundle(), id]);
    const r = await s.rt(["exec", id, "true"]);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain("created");
  });

  test("exec into a container that does not exist fails", async () => {
    const r = await s.rt(["exec", "dokrust-test-none", "true"]);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain("does not exist");
  });

  test("-t -d without a console socket is refused", async () => {
    const { id } = await running();
    const r = await s.rt(["exec", "-t", "-d", id, "true"]);
    expect(r.code).toBe(255);
  });
});
