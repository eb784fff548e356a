/**
 * --console-socket for real: a receiver (a small python3 program) listens
 * on a unix socket, takes the pty master sent with SCM_RIGHTS, writes
 * input to it and prints what comes out, as an engine's console handler
 * does.  For `create` with process.terminal and for `exec -t -d`.
 * DOKRUST_TEST_RUNTIME=runc runs the same tests against runc.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { IS_RUNC, OciSession } from "./oci_helper.ts";

const root = process.getuid?.() === 0;
const havePython = Bun.spawnSync(["sh", "-c", "command -v python3"]).exitCode === 0;
const haveScript = Bun.spawnSync(["sh", "-c", "command -v script"]).exitCode === 0;
const RUNTIME = IS_RUNC ? "/usr/sbin/runc" : new URL("../../bin/dokrust", import.meta.url).pathname;

/**
 * Listen on argv[1]; print "listening"; take one fd; write argv[2] (if
 * any) to it; copy it to stdout until the terminal closes (EIO) or 10 s
 * pass without output.
 */
const RECEIVER = `
import os, select, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
_, fds, _, _ = socket.recv_fds(c, 1024, 1)
master = fds[0]
if len(sys.argv) > 2:
    os.write(master, sys.argv[2].encode())
while True:
    r, _, _ = select.select([master], [], [], 10)
    if not r:
        break
    try:
        data = os.read(master, 4096)
    except OSError:
        break
    if not data:
        break
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
`;

interface Receiver {
  socket: string;
  /** Everything that came out of the master, once the terminal closed. */
  output: Promise<string>;
  stop(): void;
}

let s: OciSession;
let dir: string;
const receivers: Receiver[] = [];

beforeEach(() => {
  s = new OciSession();
  dir = mkdtempSync("/tmp/dokrust-test-console-");
  writeFileSync(`${dir}/receiver.py`, RECEIVER);
});
afterEach(async () => {
  for (const r of receivers.splice(0)) r.stop();
  await s.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

async function receiver(input?: string): Promise<Receiver> {
  const socket = `${dir}/console-${receivers.length}.sock`;
  const proc = Bun.spawn(["python3", `${dir}/receiver.py`, socket, ...(input === undefined ? [] : [input])], { stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("listening\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error("the console receiver did not start");
    text += new TextDecoder().decode(value);
  }
  const output = (async () => {
    let rest = text.slice(text.indexOf("listening\n") + "listening\n".length);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return rest;
      rest += new TextDecoder().decode(value);
    }
  })();
  const r = { socket, output, stop: () => proc.kill(9) };
  receivers.push(r);
  return r;
}

/** Terminal output lines without the \r the terminal adds. */
const lines = (text: string) => text.split(/\r*\n/);

describe.skipIf(!root || !havePython)("console socket", () => {
  test("create with process.terminal sends the master; the process runs on /dev/pts/0", async () => {
    const id = s.id();
    const bundle = s.bundle((spec) => {
      spec.process!.terminal = true;
      spec.process!.args = ["sh", "-c", "tty; read line; echo got-$line; [ -t 0 ] && echo stdin-is-tty"];
    });
    const r = await receiver("typed\n");
    await s.ok(["create", "--bundle", bundle, "--console-socket", r.socket, id]);
    await s.ok(["start", id]);
    const out = lines(await r.output);
    expect(out).toContain("/dev/pts/0");
    expect(out).toContain("got-typed");
    expect(out).toContain("stdin-is-tty");
  });

  test("exec -t -d --console-socket gives the process a terminal of the container's devpts", async () => {
    const id = s.id();
    const bundle = s.bundle();
    await s.ok(["run", "-d", "--bundle", bundle, id]);
    const r = await receiver("hello\n");
    const pidFile = `${bundle}/exec.pid`;
    await s.ok(["exec", "-t", "-d", "--console-socket", r.socket, "--pid-file", pidFile, id, "sh", "-c", "tty; read w; echo exec-$w; stty size"]);
    const out = lines(await r.output);
    expect(out).toContain("/dev/pts/0");
    expect(out).toContain("exec-hello");
    // The container's mounts are left alone: no console bound over its /dev/console.
    expect(await s.ok(["exec", id, "sh", "-c", "grep -c ' /dev/console ' /proc/self/mountinfo || true"])).toBe("0\n");
  });

  test("--console-socket without a terminal is refused", async () => {
    const id = s.id();
    await s.ok(["run", "-d", "--bundle", s.bundle(), id]);
    const r = await receiver();
    const refused = await s.rt(["exec", "-d", "--console-socket", r.socket, id, "true"]);
    expect(refused.code).toBe(255);
  });
});

describe.skipIf(!root || !haveScript)("exec -t in the foreground", () => {
  test("relays the terminal to the caller's and exits with the process's status", async () => {
    const id = s.id();
    await s.ok(["run", "-d", "--bundle", s.bundle(), id]);
    // util-linux script gives the runtime a terminal of its own (runc needs one).
    const cmd = `${RUNTIME} --root ${s.root} exec -t ${id} sh -c 'tty; echo out-$((6*7)); exit 4'`;
    const proc = Bun.spawn(["script", "-qec", cmd, "/dev/null"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [code, out] = await Promise.all([proc.exited, new Response(proc.stdout).text()]);
    // The container's terminal may echo a ^@ that script sends for its closed stdin.
    const seen = lines(out.replaceAll("^@", ""));
    expect(seen).toContain("/dev/pts/0");
    expect(seen).toContain("out-42");
    expect(code).toBe(4);
  });
});
