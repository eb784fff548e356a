/**
 * Detached containers (`dokrust -d`) and their commands: list, logs,
 * exec, attach, stop, kill, wait, rm, --rm, and the monitor that watches
 * them (native/monitor.c).  Every test removes what it started and
 * checks that the monitor is gone; the shared leak check then checks
 * state directories, cgroups and processes.
 */
import { describe, expect, test } from "bun:test";
import { dlopen, FFIType, ptr } from "bun:ffi";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { BIN, BUSYBOX, dokrustCgroups, haveScript, ready, start, startInPty, stateRoot, useLeakCheck, type Result } from "./helpers.ts";

useLeakCheck();

const libc = dlopen("libc.so.6", { waitpid: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 } });
const WNOHANG = 1;

/** A dokrust command on this file's state root (no --net added: for management commands). */
function dk(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return start([BIN, ...args], { env: { DOKRUST_ROOT: stateRoot(), ...env } }).result;
}

interface Detached {
  id: string;
  monitorPid: number;
}

/** `dokrust -d` on busybox; returns the id and the monitor's pid. */
async function runDetached(args: string[], env: Record<string, string> = {}): Promise<Detached> {
  const end = args.indexOf("--");
  const r = await dk(["-r", BUSYBOX, "--net", "none", "-d", ...args.slice(0, end), ...args.slice(end)], env);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const id = r.stdout.trim();
  expect(id).toMatch(/^[0-9a-f]{64}$/);
  const state = JSON.parse(readFileSync(`${stateRoot()}/${id}/state.json`, "utf8")) as { dokrust: { monitorPid: number } };
  return { id, monitorPid: state.dokrust.monitorPid };
}

/**
 * Wait until the monitor has exited and reap it: this test process is a
 * child subreaper (the leak check's), so the daemonized monitor is its
 * child, and Bun reaps only the children it spawned.
 */
async function monitorGone(pid: number, ms = 10_000): Promise<void> {
  const status = new Int32Array(1);
  const deadline = Date.now() + ms;
  for (;;) {
    const r = libc.symbols.waitpid(pid, ptr(status), WNOHANG);
    if (r === pid || (r < 0 && !existsSync(`/proc/${pid}`))) return;
    if (Date.now() > deadline) throw new Error(`monitor ${pid} still runs`);
    await Bun.sleep(10);
  }
}

/** rm -f the containers, and check that their monitors are gone. */
async function removeAll(...containers: Detached[]): Promise<void> {
  for (const c of containers) {
    if (existsSync(`${stateRoot()}/${c.id}`)) expect((await dk(["rm", "-f", c.id])).code).toBe(0);
    await monitorGone(c.monitorPid);
    expect(existsSync(`${stateRoot()}/${c.id}`)).toBe(false);
    expect(dokrustCgroups().filter((d) => d.endsWith(`/dokrust-${c.id}`))).toEqual([]);
  }
}

async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(20);
  }
}

interface Listed {
  name: string;
  id: string;
  state: string;
  pid: number;
  command: string[];
  exitCode?: number;
}

async function listed(): Promise<Listed[]> {
  const r = await dk(["list", "--format", "json"]);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Listed[];
}

describe.skipIf(!ready)("detached containers", () => {
  test("run -d prints the id at once; list, logs, exec, stop after the grace period, wait, rm", async () => {
    // sh as pid 1 ignores SIGTERM: stop has to SIGKILL it after -t 1
    const c = await runDetached(["--name", "dokrust-test-web", "--", "sh", "-c", "echo hello; echo oops >&2; while true; do sleep 1; done"]);
    try {
      const [entry] = await listed();
      expect(entry).toMatchObject({ name: "dokrust-test-web", id: c.id, state: "running", command: ["sh", "-c", expect.stringContaining("echo hello")] });
      expect(entry!.pid).toBeGreaterThan(0);
      const table = await dk(["list"]);
      expect(table.stdout).toMatch(/^NAME\s+ID\s+STATE\s+PID\s+CREATED\s+COMMAND\n/);
      expect(table.stdout).toContain(`dokrust-test-web   ${c.id.slice(0, 12)}`);
      await until(async () => (await dk(["logs", "dokrust-test-web"])).stdout === "hello\n");
      const logs = await dk(["logs", "-t", c.id.slice(0, 8)]);
      expect(logs.stdout).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z hello\n$/);
      expect(logs.stderr).toMatch(/Z oops\n$/);
      // exec: the container's namespaces, its own environment and user, its exit code
      const ex = await dk(["exec", "-e", "FOO=bar", "-w", "/tmp", "-u", "1000:1000", "dokrust-test-web", "sh", "-c", "echo $FOO; pwd; id -u; hostname; exit 3"]);
      expect(ex.stdout).toBe("bar\n/tmp\n1000\ndokka\n");
      expect(ex.code).toBe(3);
      const t0 = Date.now();
      const stop = await dk(["stop", "-t", "1", "dokrust-test-web"]);
      expect(stop.code).toBe(0);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
      expect(Date.now() - t0).toBeLessThan(8000);
      expect((await dk(["wait", "dokrust-test-web"])).stdout).toBe("137\n");
      const [after] = await listed();
      expect(after).toMatchObject({ state: "exited", exitCode: 137, pid: 0 });
      // the monitor ran its exit command: the cgroup is gone, the state is kept
      await monitorGone(c.monitorPid);
      expect(dokrustCgroups().filter((d) => d.endsWith(`/dokrust-${c.id}`))).toEqual([]);
      expect((await dk(["logs", "dokrust-test-web"])).stdout).toBe("hello\n");
      expect((await dk(["rm", "dokrust-test-web"])).code).toBe(0);
      expect(await listed()).toEqual([]);
    } finally {
      await removeAll(c);
    }
  });

  test("kill -s and runc's kill ID SIGNAL both reach the container", async () => {
    const c = await runDetached(["--", "sh", "-c", "trap 'echo usr1' USR1; while true; do sleep 0.1; done"]);
    try {
      expect((await dk(["kill", "-s", "USR1", c.id.slice(0, 10)])).code).toBe(0);
      await until(async () => (await dk(["logs", c.id])).stdout.includes("usr1"));
      expect((await dk(["kill", c.id, "KILL"])).code).toBe(0);
      expect((await dk(["wait", c.id])).stdout).toBe("137\n");
    } finally {
      await removeAll(c);
    }
  });

  test("logs: a container writing a lot quickly loses nothing; output after dokrust has gone is logged", async () => {
    const c = await runDetached(["--", "sh", "-c", "seq 1 200000; sleep 1; echo late"]);
    try {
      expect((await dk(["wait", c.id])).stdout).toBe("0\n");
      const out = (await dk(["logs", c.id])).stdout.split("\n");
      expect(out.length).toBe(200002);
      expect(out.slice(0, 200000).every((line, i) => line === String(i + 1))).toBe(true);
      expect(out[200000]).toBe("late");
      expect((await dk(["logs", "--tail", "2", c.id])).stdout).toBe("200000\nlate\n");
    } finally {
      await removeAll(c);
    }
  });

  test("logs rotate at the size limit, keep one old file, and logs -f follows across rotation", async () => {
    const env = { DOKRUST_LOG_MAX_SIZE: "20000" };
    const c = await runDetached(["--", "sh", "-c", "sleep 1; i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo line-$i; [ $((i % 50)) = 0 ] && usleep 20000; done"], env);
    try {
      const follow = start([BIN, "logs", "-f", c.id], { env: { DOKRUST_ROOT: stateRoot() } });
      const r = await follow.result;
      expect(r.code).toBe(0);
      const lines = r.stdout.trimEnd().split("\n");
      expect(lines).toEqual(Array.from({ length: 2000 }, (_, i) => `line-${i + 1}`));
      const dir = `${stateRoot()}/${c.id}`;
      expect(existsSync(`${dir}/container.log.1`)).toBe(true);
      expect(existsSync(`${dir}/container.log.2`)).toBe(false);
      // what is kept is contiguous and ends with the last line
      const kept = (await dk(["logs", c.id])).stdout.trimEnd().split("\n");
      const first = Number(kept[0]!.slice(5));
      expect(first).toBeGreaterThan(1);
      expect(kept).toEqual(Array.from({ length: 2001 - first }, (_, i) => `line-${first + i}`));
    } finally {
      await removeAll(c);
    }
  });

  test.skipIf(!haveScript)("exec -it gives the new process a terminal; without -t it has none", async () => {
    const c = await runDetached(["--", "sleep", "1000"]);
    try {
      const pty = startInPty(`${BIN} exec -it ${c.id.slice(0, 12)} sh -c 'tty; echo $((6*7)); exit 7'; echo exec-exit=$?`);
      const r = await pty.result;
      // two terminals (the container's, script's) each turn \n into \r\n.
      // script(1) answers the end of its own stdin by writing the pty's
      // VEOF character, which is NUL once dokrust has made that terminal
      // raw; when that lands before the command ends, the container's
      // terminal echoes it as ^@ (an artifact of the harness).
      expect(r.stdout).toMatch(/\/dev\/pts\/\d+\r+\n(\^@)?42\r+\n/);
      expect(r.stdout).toContain("exec-exit=7");
      const plain = await dk(["exec", c.id, "sh", "-c", "tty || echo no-tty"]);
      expect(plain.stdout).toContain("no-tty");
    } finally {
      await removeAll(c);
    }
  });

  test.skipIf(!haveScript)("attach to a -dit shell; ctrl-p ctrl-q detaches and leaves it running; exit ends attach with the code", async () => {
    const c = await runDetached(["-i", "-t", "--name", "dokrust-test-tty", "--", "/bin/sh"]);
    try {
      const first = startInPty(`${BIN} attach dokrust-test-tty; echo attach-exit=$?`, { stdin: "pipe" });
      await Bun.sleep(500);
      first.write("echo hi-$((6*7))\r");
      await first.waitFor("hi-42");
      first.write("\x10\x11");
      await first.waitFor("attach-exit=0");
      first.closeStdin();
      await first.result;
      expect((await listed())[0]?.state).toBe("running");
      const second = startInPty(`${BIN} attach dokrust-test-tty; echo attach-exit=$?`, { stdin: "pipe" });
      await Bun.sleep(500);
      second.write("exit 5\r");
      await second.waitFor("attach-exit=5");
      second.closeStdin();
      await second.result;
      expect((await dk(["wait", "dokrust-test-tty"])).stdout).toBe("5\n");
      expect((await dk(["logs", "dokrust-test-tty"])).stdout).toContain("hi-42");
    } finally {
      await removeAll(c);
    }
  });

  test("--rm with -d: the container is removed when it exits", async () => {
    const c = await runDetached(["--rm", "--name", "dokrust-test-rm", "--", "sh", "-c", "sleep 0.5; exit 4"]);
    await until(() => !existsSync(`${stateRoot()}/${c.id}`));
    await removeAll(c);
    expect(await listed()).toEqual([]);
  });

  test("a foreground container is listed while it runs", async () => {
    const fg = start([BIN, "-r", BUSYBOX, "--net", "none", "--name", "dokrust-test-fg", "--", "sh", "-c", "echo up; sleep 2"], { env: { DOKRUST_ROOT: stateRoot() } });
    await fg.waitFor("up");
    const [entry] = await listed();
    expect(entry).toMatchObject({ name: "dokrust-test-fg", state: "running" });
    expect((await fg.result).code).toBe(0);
    expect(await listed()).toEqual([]);
  });

  test("bad input: one clear line, a non-zero exit, nothing changed", async () => {
    const c = await runDetached(["--name", "dokrust-test-bad", "--", "sleep", "1000"]);
    const stopped = await runDetached(["--", "true"]);
    // two stored states whose ids share a prefix
    const fake = ["dokrust-test-amb1", "dokrust-test-amb2"];
    try {
      await dk(["wait", stopped.id]);
      const state = readFileSync(`${stateRoot()}/${stopped.id}/state.json`, "utf8");
      for (const id of fake) {
        mkdirSync(`${stateRoot()}/${id}`);
        writeFileSync(`${stateRoot()}/${id}/state.json`, state.replaceAll(stopped.id, id));
      }
      const before = await listed();
      const cases: Array<[string[], RegExp]> = [
        [["logs", "dokrust-test-nosuch"], /^dokrust: container dokrust-test-nosuch does not exist\n$/],
        [["stop", "dokrust-test-nosuch"], /does not exist\n$/],
        [["exec", "dokrust-test-nosuch", "true"], /does not exist\n$/],
        [["wait", "dokrust-test-nosuch"], /does not exist\n$/],
        [["kill", "-s", "KILL", "dokrust-test-nosuch"], /does not exist\n$/],
        [["rm", "dokrust-test-amb"], /^dokrust: dokrust-test-amb is ambiguous: .*\n$/],
        [["exec", stopped.id, "true"], /^dokrust: cannot exec in .*stopped.*\n$/],
        [["rm", "dokrust-test-bad"], /^dokrust: cannot remove container dokrust-test-bad: it is running; stop it first, or use rm -f\n$/],
        [["-r", BUSYBOX, "--net", "none", "-d", "--name", "dokrust-test-bad", "--", "true"], /^dokrust: the name dokrust-test-bad is already in use by container [0-9a-f]{12}; .*\n$/],
      ];
      for (const [args, message] of cases) {
        const r = await dk(args);
        expect({ args, stderr: r.stderr }).toEqual({ args, stderr: expect.stringMatching(message) });
        expect(r.code).not.toBe(0);
        expect(r.stdout).toBe("");
      }
      const after = await listed();
      expect(after.map((e) => [e.id, e.state])).toEqual(before.map((e) => [e.id, e.state]));
    } finally {
      for (const id of fake) rmSync(`${stateRoot()}/${id}`, { recursive: true, force: true });
      await removeAll(c, stopped);
    }
  });

  test("a state from an earlier boot is not reported as running", async () => {
    const c = await runDetached(["--", "sleep", "1000"]);
    const old = "dokrust-test-oldboot";
    try {
      const state = JSON.parse(readFileSync(`${stateRoot()}/${c.id}/state.json`, "utf8")) as Record<string, unknown>;
      // same pid and start time as a live process, but another boot
      mkdirSync(`${stateRoot()}/${old}`);
      writeFileSync(`${stateRoot()}/${old}/state.json`, JSON.stringify({ ...state, id: old, bootId: "00000000-0000-0000-0000-000000000000", dokrust: { ...(state.dokrust as object), name: "dokrust-test-old" } }));
      const entries = await listed();
      expect(entries.find((e) => e.id === old)?.state).toBe("exited");
      expect(entries.find((e) => e.id === c.id)?.state).toBe("running");
    } finally {
      rmSync(`${stateRoot()}/${old}`, { recursive: true, force: true });
      await removeAll(c);
    }
  });
});
