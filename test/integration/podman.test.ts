/**
 * A real client: podman with dokrust as its OCI runtime (`--runtime
 * <abs path to bin/dokrust>`), in a private podman store that the tests
 * remove again.  podman drives create (with --console-socket for -t),
 * start, state, kill, delete, exec --process --detach, and --version.
 *
 * These machines' root lacks CAP_SYS_RESOURCE and the hard NOFILE limit
 * is 20000, so podman's default rlimits fail even with runc: every run
 * passes --ulimit.  Skipped when podman is not installed (it is not part
 * of .ci/run: too heavy).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdtempSync, readdirSync, rmdirSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const BUSYBOX = `${REPO}/test/fixtures/cache/busybox`;
const DOKRUST = `${REPO}/bin/dokrust`;
const has = (cmd: string) => Bun.spawnSync(["sh", "-c", `command -v ${cmd}`]).exitCode === 0;
const ready = process.getuid?.() === 0 && has("podman") && existsSync(BUSYBOX);

const tag = randomBytes(4).toString("hex");
const store = {
  root: `/var/lib/dokrust-test-podman-${tag}`,
  runroot: `/run/dokrust-test-podman-${tag}`,
  tmpdir: `/run/dokrust-test-podman-${tag}-tmp`,
};
const PODMAN = [
  "podman",
  "--root", store.root,
  "--runroot", store.runroot,
  "--tmpdir", store.tmpdir,
  "--cgroup-manager", "cgroupfs",
  "--events-backend", "none",
  "--runtime", DOKRUST,
];
const LIMITS = ["--network", "none", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"];
const IMAGE = `localhost/dokrust-test-busybox-${tag}:latest`;
/** podman's cgroup parent on cgroupfs; removed afterwards only if these tests made it. */
const PARENTS = readdirSync("/sys/fs/cgroup").map((h) => `/sys/fs/cgroup/${h}/libpod_parent`);
const parentsBefore = new Set(PARENTS.filter((p) => existsSync(p)));

let work = "";
const containerIds: string[] = [];

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function podman(args: string[], timeoutMs = 60_000): Promise<Result> {
  const proc = Bun.spawn([...PODMAN, ...args], { cwd: "/", stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill(9), timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

async function ok(args: string[]): Promise<string> {
  const r = await podman(args);
  if (r.code !== 0) throw new Error(`podman ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Run a podman command line on a terminal made by util-linux script; its output and status. */
async function inPty(args: string[], input: string): Promise<Result> {
  const q = (w: string) => `'${w.replace(/'/g, `'\\''`)}'`;
  const proc = Bun.spawn(["script", "-qec", [...PODMAN, ...args].map(q).join(" "), "/dev/null"], { cwd: "/", stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  proc.stdin.write(input);
  await proc.stdin.end();
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

const lines = (text: string) => text.replaceAll("^@", "").split(/\r*\n/);

beforeAll(async () => {
  if (!ready) return;
  work = mkdtempSync("/tmp/dokrust-test-podman-");
  cpSync(BUSYBOX, `${work}/rootfs`, { recursive: true, verbatimSymlinks: true });
  const tar = Bun.spawnSync(["tar", "-C", BUSYBOX, "-cf", `${work}/busybox.tar`, "."]);
  if (tar.exitCode !== 0) throw new Error(`tar: ${tar.stderr}`);
  await ok(["import", `${work}/busybox.tar`, IMAGE]);
});

afterAll(async () => {
  if (!ready) return;
  await podman(["rm", "--all", "--force", "--time", "0"]);
  await podman(["rmi", "--all", "--force"]);
  const mounts = (await Bun.file("/proc/self/mountinfo").text()).split("\n").filter((l) => l.includes(`dokrust-test-podman-${tag}`));
  for (const dir of [store.root, store.runroot, store.tmpdir, work]) rmSync(dir, { recursive: true, force: true });
  for (const parent of PARENTS) {
    if (parentsBefore.has(parent) || !existsSync(parent)) continue;
    for (const sub of ["conmon", ""]) {
      try {
        rmdirSync(sub ? `${parent}/${sub}` : parent);
      } catch {
        // not empty: something else uses it now
      }
    }
  }
  const left = containerIds.filter((id) => existsSync(`/run/dokrust/${id}`) || PARENTS.some((p) => existsSync(`${p}/libpod-${id}`)));
  if (mounts.length || left.length) throw new Error(`podman tests leaked: mounts ${mounts.join(",")} containers ${left.join(",")}`);
});

describe.skipIf(!ready)("podman --runtime dokrust", () => {
  test("run --rm --rootfs runs a command and returns its status", async () => {
    const r = await podman(["run", "--rm", ...LIMITS, "--rootfs", `${work}/rootfs`, "sh", "-c", "echo hello-$((6*7)); cat /proc/self/status | grep -c ^Cap; exit 3"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("hello-42\n5\n");
    expect(r.code).toBe(3);
  });

  test("run --rm with an image made by podman import", async () => {
    const out = await ok(["run", "--rm", ...LIMITS, IMAGE, "sh", "-c", "echo from-image; ls /sys/fs/cgroup/pids/pids.max; hostname"]);
    const [first, second, host] = out.trim().split("\n");
    expect(first).toBe("from-image");
    expect(second).toBe("/sys/fs/cgroup/pids/pids.max");
    expect(host).toMatch(/^[0-9a-f]{12}$/);
  });

  test("run -it gives the container a terminal through the console socket", async () => {
    const r = await inPty(["run", "--rm", "-it", ...LIMITS, IMAGE, "sh"], "tty; echo in-$((6*7)); exit 4\n");
    expect(lines(r.stdout)).toContain("/dev/pts/0");
    expect(lines(r.stdout)).toContain("in-42");
    expect(r.code).toBe(4);
  });

  test("run -d, exec (plain and -it), stop, rm", async () => {
    const name = `dokrust-test-${tag}-d`;
    const id = (await ok(["run", "-d", "--name", name, ...LIMITS, IMAGE, "sleep", "1000"])).trim();
    containerIds.push(id);
    expect((await ok(["inspect", "--format", "{{.State.Status}}", name])).trim()).toBe("running");
    const ps = await ok(["exec", name, "ps", "-o", "pid,args"]);
    expect(ps).toMatch(/^\s*1\s+sleep 1000$/m);
    expect((await podman(["exec", name, "sh", "-c", "exit 7"])).code).toBe(7);
    expect((await ok(["exec", "--env", "DOKRUST_X=1", "--workdir", "/tmp", name, "sh", "-c", "echo $DOKRUST_X; pwd"]))).toBe("1\n/tmp\n");
    const tty = await inPty(["exec", "-it", name, "sh"], "tty; exit 2\n");
    expect(lines(tty.stdout)).toContain("/dev/pts/0");
    expect(tty.code).toBe(2);
    await ok(["stop", "--time", "1", name]);
    expect((await ok(["inspect", "--format", "{{.State.Status}}", name])).trim()).toBe("exited");
    await ok(["rm", name]);
    expect(existsSync(`/run/dokrust/${id}`)).toBe(false);
  });
});
