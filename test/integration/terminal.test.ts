/**
 * Terminals: -t gives the container a pseudo-terminal of its own devpts,
 * -it relays a terminal session (driven here through a pty made by
 * util-linux `script`), the host terminal is put in raw mode and restored
 * on every way out, the window size is set and follows SIGWINCH; -i
 * without -t streams stdin and closes it on EOF.
 */
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync, readlinkSync } from "node:fs";
import { BUSYBOX, DEBIAN, dokrust, findContainer, haveDebian, haveScript, ready, sh, startInPty, useLeakCheck } from "./helpers.ts";

useLeakCheck();

const FIXTURES: Array<[string, string]> = [["busybox", BUSYBOX], ...(haveDebian ? [["debian", DEBIAN] as [string, string]] : [])];

/** Lines of terminal output, without the \r the terminal adds. */
const lines = (text: string) => text.split(/\r*\n/);
/** `stty -g` output lines: the saved terminal modes. */
const sttyLines = (text: string) => lines(text).filter((l) => /^[0-9a-f]+(:[0-9a-f]+){10,}$/.test(l));

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/** Quote a word for the shell `script` runs. */
const q = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

describe.skipIf(!ready || !haveScript)("terminal", () => {
  for (const [name, rootfs] of FIXTURES) {
    test(`-t: the command runs on /dev/pts/0 of its own devpts, its output and exit code come back (${name})`, async () => {
      const cmd = `$DOKRUST -r ${q(rootfs)} -t -- /bin/sh -c 'tty; [ -c /dev/console ] && echo console; echo out-$((6*7)); exit 3'; echo "rc=$?"`;
      const r = await startInPty(cmd).result;
      const out = lines(r.stdout);
      expect(out).toContain("/dev/pts/0");
      expect(out).toContain("console");
      expect(out).toContain("out-42");
      expect(out).toContain("rc=3");
    });
  }

  test("-it: an interactive shell session; the host terminal mode is restored afterwards", async () => {
    const run = startInPty(`stty -g; $DOKRUST -r ${q(BUSYBOX)} -it -- /bin/sh; echo "rc=$?"; stty -g`, { stdin: "pipe" });
    await run.waitFor("# ");
    run.write("tty; echo hi-$((6*7)); exit 5\n");
    const r = await run.result;
    const out = lines(r.stdout);
    expect(out).toContain("/dev/pts/0");
    expect(out).toContain("hi-42");
    expect(out).toContain("rc=5");
    const modes = sttyLines(r.stdout);
    expect(modes).toHaveLength(2);
    expect(modes[1]).toBe(modes[0]);
  });

  test("-it: raw mode while the container runs; the window size is set at start and follows SIGWINCH", async () => {
    const script = 'stty size; echo ready; while read line; do [ "$line" = q ] && exit 0; stty size; done';
    const run = startInPty(`stty rows 30 cols 100; stty -g; $DOKRUST -r ${q(BUSYBOX)} -it -- /bin/sh -c ${q(script)}; echo "rc=$?"; stty -g`, { stdin: "pipe" });
    await run.waitFor("ready");
    const container = await findContainer(run);
    const dokrustPid = parentOf(parentOf(container.pid));
    const hostTty = readlinkSync(`/proc/${dokrustPid}/fd/0`);
    expect(hostTty).toMatch(/^\/dev\/pts\/\d+$/);
    const during = Bun.spawnSync(["stty", "-F", hostTty, "-a"]).stdout.toString();
    expect(during).toContain("-icanon");
    expect(during).toMatch(/(^|\s)-echo(\s|$)/);
    // Resizing the host terminal sends SIGWINCH to its foreground group;
    // ask the container for its size until the new one shows.
    expect(Bun.spawnSync(["stty", "-F", hostTty, "rows", "40", "cols", "120"]).exitCode).toBe(0);
    for (let i = 0; i < 100 && !/^40 120\r?$/m.test(run.stdout()); i++) {
      run.write("size\r");
      await Bun.sleep(20);
    }
    run.write("q\r");
    const r = await run.result;
    const out = lines(r.stdout);
    expect(out).toContain("30 100");
    expect(out).toContain("40 120");
    expect(out).toContain("rc=0");
    const modes = sttyLines(r.stdout);
    expect(modes).toHaveLength(2);
    expect(modes[1]).toBe(modes[0]);
  });

  test("-it: the terminal is restored when dokrust fails (command not found)", async () => {
    const r = await startInPty(`stty -g; $DOKRUST -r ${q(BUSYBOX)} -it -- /no/such/command; echo "rc=$?"; stty -g`).result;
    expect(lines(r.stdout)).toContain("rc=127");
    expect(r.stdout).toContain("/no/such/command");
    const modes = sttyLines(r.stdout);
    expect(modes).toHaveLength(2);
    expect(modes[1]).toBe(modes[0]);
  });

  test("-it: the terminal is restored when dokrust gets SIGTERM, which reaches the container", async () => {
    const script = 'trap "echo got-term; exit 9" TERM; echo ready; while :; do sleep 0.02; done';
    const run = startInPty(`stty -g; $DOKRUST -r ${q(BUSYBOX)} -it -- /bin/sh -c ${q(script)}; echo "rc=$?"; stty -g`, { stdin: "pipe" });
    await run.waitFor("ready");
    const container = await findContainer(run);
    process.kill(parentOf(parentOf(container.pid)), "SIGTERM");
    const r = await run.result;
    expect(lines(r.stdout)).toContain("got-term");
    expect(lines(r.stdout)).toContain("rc=9");
    const modes = sttyLines(r.stdout);
    expect(modes).toHaveLength(2);
    expect(modes[1]).toBe(modes[0]);
  });

  test("-it: the terminal is restored when the container is killed from the host", async () => {
    const run = startInPty(`stty -g; $DOKRUST -r ${q(BUSYBOX)} -it -- /bin/sh -c 'echo ready; read line'; echo "rc=$?"; stty -g`, { stdin: "pipe" });
    await run.waitFor("ready");
    const container = await findContainer(run);
    process.kill(container.pid, "SIGKILL");
    const r = await run.result;
    expect(lines(r.stdout)).toContain("rc=137");
    const modes = sttyLines(r.stdout);
    expect(modes).toHaveLength(2);
    expect(modes[1]).toBe(modes[0]);
  });

  test("-t works without a terminal on the host side", async () => {
    const r = await dokrust(["-r", BUSYBOX, "-t", ...sh("tty; exit 4")]);
    expect(r.code).toBe(4);
    expect(lines(r.stdout)).toContain("/dev/pts/0");
  });
});

describe.skipIf(!ready)("stdin", () => {
  test("-i without -t streams stdin to the container and EOF closes it", async () => {
    const r = await dokrust(["-i", "-r", BUSYBOX, ...sh("cat; echo done")], { stdin: "hello\nworld\n" });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("hello\nworld\ndone\n");
  });

  test("-i passes a large stream unchanged", async () => {
    const data = Buffer.alloc(2 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 11)) & 0xff;
    const digest = createHash("md5").update(data).digest("hex");
    const r = await dokrust(["-i", "-r", BUSYBOX, ...sh("md5sum")], { stdin: data });
    expect(r.code).toBe(0);
    expect(r.stdout.split(" ")[0]).toBe(digest);
  });

  test("without -i the container's stdin is empty", async () => {
    const r = await dokrust(["-r", BUSYBOX, ...sh("cat; echo done")], { stdin: "not for the container\n" });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("done\n");
  });
});
