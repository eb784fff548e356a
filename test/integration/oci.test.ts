/**
 * runc's command line over the core: lifecycle, state, kill, delete,
 * list, ps, hooks, refusals.  DOKRUST_TEST_RUNTIME=runc runs the same
 * tests against runc (those marked dokrust-only check dokrust's wording).
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
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

describe.skipIf(!root)("oci lifecycle", () => {
  test("create, start, kill, delete walk created → running → stopped", async () => {
    const id = s.id();
    const bundle = s.bundle((spec) => {
      spec.process!.args = ["sh", "-c", "hostname > /out/hostname; id -u > /out/uid; exec sleep 100"];
    });
    await s.ok(["create", "--bundle", bundle, "--pid-file", `${bundle}/pid`, id]);
    const created = await s.state(id);
    expect(Object.keys(created).sort()).toEqual(["bundle", "created", "id", "ociVersion", "owner", "pid", "rootfs", "status"]);
    expect(created).toMatchObject({ id, status: "created", bundle, rootfs: `${bundle}/rootfs`, owner: "" });
    expect(Number(readFileSync(`${bundle}/pid`, "utf8"))).toBe(created.pid as number);
    expect(existsSync(`${bundle}/out/hostname`)).toBe(false);

    await s.ok(["start", id]);
    expect((await s.state(id)).status).toBe("running");
    for (let i = 0; i < 250 && !existsSync(`${bundle}/out/uid`); i++) await Bun.sleep(20);
    expect(readFileSync(`${bundle}/out/hostname`, "utf8").trim()).toBe("dokrust");
    expect(readFileSync(`${bundle}/out/uid`, "utf8").trim()).toBe("0");

    const refused = await s.rt(["delete", id]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("running");

    await s.ok(["kill", id, "KILL"]);
    await s.waitStatus(id, "stopped");
    await s.ok(["delete", id]);
    const gone = await s.rt(["state", id]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("does not exist");
  });

  test("kill takes signal names with and without SIG, and numbers", async () => {
    const id = s.id();
    const bundle = s.bundle((spec) => {
      spec.process!.args = ["sh", "-c", "trap 'echo usr1 >> /out/sig' USR1; trap 'echo term >> /out/sig; exit 0' TERM; touch /out/ready; while :; do sleep 0.05; done"];
    });
    await s.ok(["run", "-d", "--bundle", bundle, id]);
    for (let i = 0; i < 250 && !existsSync(`${bundle}/out/ready`); i++) await Bun.sleep(20);
    await s.ok(["kill", id, "USR1"]);
    for (let i = 0; i < 250 && !existsSync(`${bundle}/out/sig`); i++) await Bun.sleep(20);
    await s.ok(["kill", id, "15"]);
    await s.waitStatus(id, "stopped");
    expect(readFileSync(`${bundle}/out/sig`, "utf8")).toBe("usr1\nterm\n");
    const bad = await s.rt(["kill", id, "SIGFOO"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("unknown signal");
    await s.ok(["delete", id]);
  });

  test("delete --force kills a running container and leaves nothing", async () => {
    const id = s.id();
    const bundle = s.bundle();
    await s.ok(["run", "-d", "--bundle", bundle, id]);
    const pid = (await s.state(id)).pid as number;
    await s.ok(["delete", "--force", id]);
    expect(existsSync(`/proc/${pid}/stat`) && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z")).toBe(false);
    expect((await s.ok(["list", "-q"])).trim()).toBe("");
  });

  test("delete of a created container kills it", async () => {
    const id = s.id();
    await s.ok(["create", "--bundle", s.bundle(), id]);
    await s.ok(["delete", id]);
    expect((await s.rt(["state", id])).code).toBe(1);
  });

  test("run in the foreground exits with the container's status and cleans up", async () => {
    const id = s.id();
    const bundle = s.bundle((spec) => {
      spec.process!.args = ["sh", "-c", "echo out; exit 7"];
    });
    const r = await s.rt(["run", "--bundle", bundle, id]);
    expect(r.code).toBe(7);
    expect(r.stdout).toBe("out\n");
    expect((await s.rt(["state", id])).code).toBe(1);
  });

  test("--preserve-fds passes the caller's fds on as 3, 4, ...", async () => {
    const id = s.id();
    const bundle = s.bundle((spec) => {
      spec.process!.args = ["sh", "-c", "echo through-fd-3 >&3"];
    });
    const fd = openSync(`${bundle}/fd3`, "w");
    try {
      const r = await s.rt(["run", "--preserve-fds", "1", "--bundle", bundle, id], { stdio: [fd] });
      expect(r.code).toBe(0);
    } finally {
      closeSync(fd);
    }
    expect(readFileSync(`${bundle}/fd3`, "utf8")).toBe("through-fd-3\n");
  });

  test("list and ps show the container", async () => {
    const id = s.id();
    await s.ok(["run", "-d", "--bundle", s.bundle(), id]);
    const pid = (await s.state(id)).pid as number;
    expect((await s.ok(["list", "-q"])).trim()).toBe(id);
    const table = await s.ok(["list"]);
    expect(table.split("\n")[0]).toMatch(/^ID\s+PID\s+STATUS\s+BUNDLE\s+CREATED\s+OWNER$/);
    expect(table).toMatch(new RegExp(`^${id}\\s+${pid}\\s+running\\s`, "m"));
    const json = JSON.parse(await s.ok(["list", "--format", "json"])) as Array<Record<string, unknown>>;
    expect(json).toHaveLength(1);
    expect(json[0]).toMatchObject({ id, pid, status: "running", owner: "root" });
    expect(JSON.parse(await s.ok(["ps", "--format", "json", id]))).toEqual([pid]);
    const ps = await s.ok(["ps", id]);
    expect(ps.split("\n")[0]).toContain("PID");
    expect(ps).toMatch(new RegExp(`^\\S+\\s+${pid}\\s`, "m"));
  });

  test("pause and resume freeze and thaw the container", async () => {
    const id = s.id();
    await s.ok(["run", "-d", "--bundle", s.bundle(), id]);
    await s.ok(["pause", id]);
    expect((await s.state(id)).status).toBe("paused");
    await s.ok(["resume", id]);
    expect((await s.state(id)).status).toBe("running");
  });

  test("hooks get the state on stdin", async () => {
    const id = s.id();
    const bundle = s.bundle((spec, dir) => {
      const hook = (name: string) => [{ path: "/bin/sh", args: ["sh", "-c", `cat > ${dir}/hook-${name}.json`] }];
      spec.hooks = { createRuntime: hook("createRuntime"), poststart: hook("poststart"), poststop: hook("poststop") };
      spec.annotations = { "org.dokrust.test": "yes" };
    });
    await s.ok(["create", "--bundle", bundle, id]);
    const createRuntime = JSON.parse(readFileSync(`${bundle}/hook-createRuntime.json`, "utf8"));
    expect(createRuntime).toMatchObject({ id, bundle, annotations: { "org.dokrust.test": "yes" } });
    expect(createRuntime.pid).toBeGreaterThan(0);
    expect((await s.state(id)).annotations).toEqual({ "org.dokrust.test": "yes" });
    await s.ok(["start", id]);
    // runc 1.1 hands poststart hooks the state it read before starting ("created").
    const poststart = JSON.parse(readFileSync(`${bundle}/hook-poststart.json`, "utf8"));
    expect(poststart).toMatchObject(IS_RUNC ? { id } : { id, status: "running" });
    await s.ok(["delete", "--force", id]);
    expect(JSON.parse(readFileSync(`${bundle}/hook-poststop.json`, "utf8"))).toMatchObject({ id, status: "stopped" });
  });

  test("a failing hook fails create and leaves nothing", async () => {
    const id = s.id();
    const bundle = s.bundle((spec) => {
      spec.hooks = { createRuntime: [{ path: "/bin/sh", args: ["sh", "-c", "echo nope >&2; exit 3"] }] };
    });
    const r = await s.rt(["create", "--bundle", bundle, id]);
    expect(r.code).toBe(1);
    expect((await s.ok(["list", "-q"])).trim()).toBe("");
  });
});

describe.skipIf(!root)("oci refusals", () => {
  test("create refuses an id that exists", async () => {
    const id = s.id();
    const bundle = s.bundle();
    await s.ok(["create", "--bundle", bundle, id]);
    const r = await s.rt(["create", "--bundle", bundle, id]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("already exists");
    expect((await s.state(id)).status).toBe("created");
  });

  test("terminal without a console socket fails and leaves nothing", async () => {
    const id = s.id();
    const bundle = s.bundle((spec) => {
      spec.process!.terminal = true;
    });
    const r = await s.rt(["create", "--bundle", bundle, id]);
    expect(r.code).toBe(1);
    expect((await s.ok(["list", "-q"])).trim()).toBe("");
  });

  test("start of a running container fails", async () => {
    const id = s.id();
    await s.ok(["run", "-d", "--bundle", s.bundle(), id]);
    expect((await s.rt(["start", id])).code).toBe(1);
  });

  dokrustOnly("an invalid config.json is refused naming the field", async () => {
    const id = s.id();
    const bundle = s.bundle((spec) => {
      (spec.process!.user as unknown as Record<string, unknown>).uid = "0";
    });
    const r = await s.rt(["--log-format", "json", "create", "--bundle", bundle, id]);
    expect(r.code).toBe(1);
    const record = JSON.parse(r.stderr.trim().split("\n").pop()!);
    expect(record).toMatchObject({ level: "error", msg: "config.json: /process/user/uid must be integer" });
    expect(typeof record.time).toBe("string");
    expect(existsSync(`${s.root}/${id}`)).toBe(false);
  });

  dokrustOnly("errors go to --log as json and once to stderr", async () => {
    const log = `${s.bundle()}/log`;
    const r = await s.rt(["--log", log, "--log-format", "json", "state", "dokrust-test-none"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("container dokrust-test-none does not exist\n");
    expect(JSON.parse(readFileSync(log, "utf8"))).toMatchObject({ level: "error", msg: "container dokrust-test-none does not exist" });
  });

  dokrustOnly("spec writes a valid config.json and refuses to overwrite it", async () => {
    const bundle = s.bundle();
    const r = await s.rt(["spec"], { cwd: bundle });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("exists");
    const dir = `${bundle}/out`;
    await s.ok(["spec", "--bundle", dir]);
    expect(JSON.parse(readFileSync(`${dir}/config.json`, "utf8")).process.args).toEqual(["sh"]);
  });

  dokrustOnly("the default cgroup /dokrust/<id> and its parent go with delete", async () => {
    const id = s.id();
    const bundle = s.bundle((spec) => {
      delete spec.linux!.cgroupsPath;
    });
    await s.ok(["run", "-d", "--bundle", bundle, id]);
    expect(existsSync(`/sys/fs/cgroup/pids/dokrust/${id}`)).toBe(true);
    await s.ok(["delete", "--force", id]);
    expect(existsSync(`/sys/fs/cgroup/pids/dokrust/${id}`)).toBe(false);
  });
});
