/**
 * Exit codes and signals: the command's code is dokrust's; 127 when it is
 * not found, 126 when it cannot be executed, 128+N when signal N killed
 * it; signals sent to dokrust reach the container's process.
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { BIN, BUSYBOX, descendants, dokrust, findContainer, fixtureCopy, ready, sh, start, startDokrust, stateRoot, useLeakCheck } from "./helpers.ts";
import { reapOrphans } from "./reap.ts";

useLeakCheck();

describe.skipIf(!ready)("exit codes", () => {
  for (const code of [0, 1, 7, 42, 255]) {
    test(`the command's exit code ${code} is dokrust's`, async () => {
      const r = await dokrust(["-r", BUSYBOX, ...sh(`exit ${code}`)]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(code);
    });
  }

  test("127 when the command is not found, naming it", async () => {
    for (const command of ["no-such-command", "/bin/no-such-file"]) {
      const r = await dokrust(["-r", BUSYBOX, "--", command]);
      expect(r.code).toBe(127);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(command);
      expect(r.stdout).toBe("");
    }
  });

  test("126 when the command is not executable, naming it", async () => {
    const rootfs = fixtureCopy();
    writeFileSync(`${rootfs}/not-executable`, "#!/bin/sh\necho hi\n");
    chmodSync(`${rootfs}/not-executable`, 0o644);
    mkdirSync(`${rootfs}/a-directory`);
    for (const command of ["/not-executable", "/a-directory"]) {
      const r = await dokrust(["-r", rootfs, "--", command]);
      expect(r.code).toBe(126);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(command);
    }
  });

  test("127 when a script's interpreter is missing", async () => {
    const rootfs = fixtureCopy();
    writeFileSync(`${rootfs}/script`, "#!/no/such/interpreter\n");
    chmodSync(`${rootfs}/script`, 0o755);
    const r = await dokrust(["-r", rootfs, "--", "/script"]);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain("/script");
  });

  test("a command found on PATH runs, a later PATH entry included", async () => {
    const rootfs = fixtureCopy();
    // /usr/local/sbin and /usr/local/bin, first on PATH, do not exist here
    writeFileSync(`${rootfs}/usr/bin/hello`, "#!/bin/sh\necho hello from $0\n");
    chmodSync(`${rootfs}/usr/bin/hello`, 0o755);
    const r = await dokrust(["-r", rootfs, "--", "hello"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("hello from /usr/bin/hello\n");
  });

  test("137 when the container's pid 1 is killed with SIGKILL from the host; its cgroup goes", async () => {
    const run = startDokrust(["-i", "-r", BUSYBOX, ...sh("echo ready; read line")], { stdin: "pipe" });
    await run.waitFor("ready");
    const container = await findContainer(run);
    const cgroup = container.cgroupDir("pids");
    process.kill(container.pid, "SIGKILL");
    const r = await run.result;
    expect(r.code).toBe(137);
    expect(existsSync(cgroup)).toBe(false);
  });

  test("128+N when a child process of the container is the command and dies of signal N", async () => {
    // pid 1 ignores signals it has no handler for; run a child that does not.
    const r = await dokrust(["-r", BUSYBOX, ...sh('sh -c "kill -TERM \\$\\$"; exit $?')]);
    expect(r.code).toBe(143);
  });
});

const SIGNALS: Array<[NodeJS.Signals, number]> = [
  ["SIGTERM", 15],
  ["SIGINT", 2],
  ["SIGHUP", 1],
  ["SIGQUIT", 3],
  ["SIGUSR1", 10],
  ["SIGUSR2", 12],
];

describe.skipIf(!ready)("signals", () => {
  for (const [signal, number] of SIGNALS) {
    test(`${signal} sent to dokrust reaches the container's process`, async () => {
      const name = signal.slice(3);
      const code = 60 + number;
      // The trap runs between two short sleeps of the loop.
      const script = `trap 'echo got ${name}; exit ${code}' ${name}; echo ready; while :; do sleep 0.02; done`;
      const run = startDokrust(["-r", BUSYBOX, ...sh(script)]);
      await run.waitFor("ready");
      process.kill(run.pid, signal);
      const r = await run.result;
      expect(r.stdout).toBe(`ready\ngot ${name}\n`);
      expect(r.code).toBe(code);
    });
  }

  // The container dies with a SIGKILLed dokrust (the waiting executor has
  // a parent-death signal, the container one tied to the executor); the
  // dead run's state directory and cgroups stay until a later command
  // sweeps them (src/runtime/sweep.ts); the leak check then finds nothing.
  test("when dokrust is killed with SIGKILL, the container dies with it and a later command sweeps what it left", async () => {
    const run = startDokrust(["-r", BUSYBOX, ...sh("echo ready; sleep 3")]);
    await run.waitFor("ready");
    const container = await findContainer(run);
    const orphans = descendants(run.pid);
    process.kill(run.pid, "SIGKILL");
    await run.result;
    // the executor and the container come back to this subreaper: reap them
    expect(await reapOrphans(orphans)).toEqual([]);
    expect(existsSync(`/proc/${container.pid}`)).toBe(false);
    const later = await start([BIN, "list", "-q"], { env: { DOKRUST_ROOT: stateRoot() } }).result;
    expect(later.code).toBe(0);
    expect(later.stdout).toBe("");
  });

  test("a forwarded SIGTERM is ignored by a pid 1 without a trap, as by any pid 1", async () => {
    // sh (pid 1) ignores SIGTERM without a trap, as any pid 1 does; the
    // container ends when the test ends it from the host.
    const run = startDokrust(["-r", BUSYBOX, ...sh("sleep 30 & echo ready; wait")]);
    await run.waitFor("ready");
    const container = await findContainer(run);
    process.kill(run.pid, "SIGTERM");
    await Bun.sleep(100);
    expect(existsSync(`/proc/${container.pid}`)).toBe(true);
    process.kill(container.pid, "SIGKILL");
    const r = await run.result;
    expect(r.code).toBe(137);
  });
});
