/**
 * Container escapes are blocked (issue 7, promise 3): each known class is
 * attempted for real from inside a container, and the host is checked
 * afterwards.  A small static helper (test/integration/probe/probe.c,
 * built here with `cc -static`) does what busybox cannot: hunt
 * /proc/<pid>/exe for the host's executor (CVE-2019-5736), report its
 * real/effective/saved uids when setuid, list its open fds.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { capabilityMask, DEFAULT_CAPABILITIES } from "../../src/plan/linux.ts";
import { BIN, capabilities, dokrust, fixtureCopy, ready, REPO, sh, start, startDokrust, stateRoot, tempDir, TMP_PREFIX, useLeakCheck } from "./helpers.ts";

useLeakCheck();

const haveCc = Bun.which("cc") !== null;
const runnable = ready && haveCc;
let probe = "";

beforeAll(() => {
  if (!runnable) return;
  probe = `${TMP_PREFIX}-probe-bin`;
  const cc = Bun.spawnSync(["cc", "-static", "-O1", "-o", probe, `${REPO}/test/integration/probe/probe.c`]);
  if (cc.exitCode !== 0) throw new Error(`cc probe.c: ${cc.stderr.toString()}`);
});
afterAll(() => {
  if (probe) rmSync(probe, { force: true });
});

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** A busybox copy with the probe at /probe. */
function probeRoot(): string {
  const rootfs = fixtureCopy();
  copyFileSync(probe, `${rootfs}/probe`);
  chmodSync(`${rootfs}/probe`, 0o755);
  return rootfs;
}

describe.skipIf(!runnable)("escapes through /proc/<pid>/exe", () => {
  test("no process a container can see exposes a writable path to the host's executor, even while dokrust exec joins it (CVE-2019-5736)", async () => {
    // A private copy of the executor: whatever happens, the shared one is never at risk.
    const executor = `${tempDir("exec")}/dokrust-exec`;
    copyFileSync(`${REPO}/native/build/dokrust-exec`, executor);
    chmodSync(executor, 0o755);
    const hashes = [executor, `${REPO}/native/build/dokrust-exec`, `${REPO}/node_modules/bun/bin/bun.exe`].map((f) => [f, sha256(f)]);
    const rootfs = probeRoot();
    const out = tempDir("out");
    const env = { DOKRUST_EXEC: executor };
    const name = `dokrust-test-hunt-${Math.random().toString(16).slice(2, 10)}`;
    const hunter = startDokrust(["--name", name, "-r", rootfs, "-m", `${out}:/out`, "--", "/probe", "hunt", "3000", "/out"], { env, timeoutMs: 30_000 });
    // exec joins the container: its executor child is in the container's pid namespace until it execs
    let execs = 0;
    while (!existsSync(`${out}/done`) && execs < 200) {
      const r = await start([BIN, "exec", name, "/bin/true"], { env: { DOKRUST_ROOT: stateRoot(), ...env } }).result;
      if (r.code === 0) execs++;
      else if (existsSync(`${out}/done`)) break; // the hunt ended while exec joined
      // before the container runs, and after the hunt ended, exec is refused
      else if (!/does not exist|stopped container|not running/.test(r.stderr)) throw new Error(`dokrust exec: ${r.stderr}`);
    }
    const r = await hunter.result;
    expect(r.stderr).toBe("");
    expect(execs).toBeGreaterThan(5);
    const read = (f: string) => (existsSync(`${out}/${f}`) ? readFileSync(`${out}/${f}`, "utf8") : "");
    expect(read("done")).toBe("1\n");
    if (process.env.DOKRUST_TEST_VERBOSE) console.log(read("seen"), read("wrote"));
    expect(read("seen")).toBe("");
    expect(read("wrote")).toBe("");
    for (const [file, hash] of hashes) expect(sha256(file!)).toBe(hash!);
  }, 60_000);

  test("a program whose interpreter is #!/proc/self/exe, run by dokrust exec, finds only a sealed copy of the executor", async () => {
    const executor = `${tempDir("exec")}/dokrust-exec`;
    copyFileSync(`${REPO}/native/build/dokrust-exec`, executor);
    chmodSync(executor, 0o755);
    const before = sha256(executor);
    const rootfs = fixtureCopy();
    writeFileSync(`${rootfs}/bin/evil`, "#!/proc/self/exe\n", { mode: 0o755 });
    // inside: note every exe link that names the executor, and try to open it for writing
    writeFileSync(
      `${rootfs}/bin/dokrust-watch`,
      "#!/bin/sh\nwhile [ ! -e /out/stop ]; do for p in /proc/[0-9]*; do l=$(readlink $p/exe 2>/dev/null); case $l in *dokrust*) echo \"$l\" >> /out/seen; (exec 4>>$p/exe) 2>/dev/null && echo \"$l\" >> /out/wrote;; esac; done; done\n",
      { mode: 0o755 },
    );
    const out = tempDir("out");
    const name = `dokrust-test-evil-${Math.random().toString(16).slice(2, 10)}`;
    const env = { DOKRUST_EXEC: executor };
    const watcher = startDokrust(["--name", name, "-r", rootfs, "-m", `${out}:/out`, "--", "/bin/dokrust-watch"], { env, timeoutMs: 30_000 });
    for (let i = 0; i < 100 && !existsSync(`${stateRoot()}`); i++) await Bun.sleep(20);
    let ran = 0;
    for (let i = 0; i < 40 && ran < 10; i++) {
      const r = await start([BIN, "exec", name, "/bin/evil"], { env: { DOKRUST_ROOT: stateRoot(), ...env } }).result;
      if (/usage: dokrust-exec/.test(r.stderr)) ran++;
      else if (process.env.DOKRUST_TEST_VERBOSE) console.log(r.code, r.stderr);
      else await Bun.sleep(50);
    }
    writeFileSync(`${out}/stop`, "");
    await watcher.result;
    expect(ran).toBeGreaterThan(0);
    const seen = existsSync(`${out}/seen`) ? readFileSync(`${out}/seen`, "utf8").trim().split("\n") : [];
    for (const link of seen) expect(link).toMatch(/^\/memfd:dokrust-exec/);
    expect(existsSync(`${out}/wrote`)).toBe(false);
    expect(sha256(executor)).toBe(before);
  }, 60_000);

  test("writes to /proc/<pid>/exe of every process in the container fail; pid 1 is the user's program", async () => {
    const rootfs = probeRoot();
    const r = await dokrust(["-r", rootfs, ...sh("sleep 5 & for p in /proc/[0-9]*; do echo x 2>/dev/null >> $p/exe && echo wrote $p; done; readlink /proc/1/exe; kill %1")]);
    expect(r.stdout).toBe("/bin/busybox\n");
    expect(r.code).toBe(0);
  });
});

describe.skipIf(!runnable)("escapes through file descriptors and the working directory", () => {
  test("only fds 0-2 reach the container, even when dokrust inherits more; cwd is inside the rootfs", async () => {
    const rootfs = probeRoot();
    const secret = `${tempDir("secret")}/file`;
    writeFileSync(secret, "host secret\n");
    const fds = [openSync(secret, "r"), openSync("/", "r")];
    try {
      const proc = Bun.spawn([BIN, "--net", "none", "-r", rootfs, "-w", "/tmp/work", "--", "/bin/sh", "-c", "/probe fds; ls /proc/1/fd; for l in /proc/self/cwd /proc/1/cwd /proc/1/root; do readlink $l; done"], {
        stdio: ["ignore", "pipe", "pipe", fds[0]!, fds[1]!],
        env: { ...process.env, DOKRUST_ROOT: stateRoot() },
        cwd: "/",
      });
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      expect(stderr).toBe("");
      expect(code).toBe(0);
      const lines = stdout.trim().split("\n");
      expect(lines.slice(0, 3).map((l) => l.split(" ")[0])).toEqual(["0", "1", "2"]);
      // pid 1 (the shell) holds 0-2 only; cwd is the working directory inside the root
      expect(lines.slice(3)).toEqual(["0", "1", "2", "/tmp/work", "/tmp/work", "/"]);
      expect(stdout).not.toContain("secret");
    } finally {
      for (const fd of fds) closeSync(fd);
    }
  });
});

describe.skipIf(!runnable)("escapes through mount targets", () => {
  test("a mount target swapped between a directory and a symlink to the host during many starts never reaches the host", async () => {
    const rootfs = fixtureCopy();
    const outside = tempDir("outside");
    const src = tempDir("src");
    writeFileSync(`${src}/marker`, "bound\n");
    mkdirSync(`${rootfs}/mnt/real`, { recursive: true });
    const link = `${rootfs}/mnt/swap`;
    // the swapper: a directory, then a symlink to the host's `outside`, over and over
    let stop = false;
    let swaps = 0;
    const swapper = (async () => {
      while (!stop) {
        try {
          rmSync(link, { recursive: true, force: true });
          if (swaps++ % 2) symlinkSync(outside, link);
          else mkdirSync(link);
        } catch {
          // dokrust made the path inside the rootfs meanwhile: swap again
        }
        await Bun.sleep(0);
      }
    })();
    const results: number[] = [];
    try {
      for (let i = 0; i < 30; i++) {
        const r = await dokrust(["-r", rootfs, "-m", `${src}:/mnt/swap/deep/target`, ...sh("cat /mnt/swap/deep/target/marker")]);
        results.push(r.code);
        if (process.env.DOKRUST_TEST_VERBOSE && r.code) console.log(r.code, r.stderr.trim());
        if (r.code !== 0) expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(readdirSync(outside)).toEqual([]);
      }
    } finally {
      stop = true;
      await swapper;
    }
    expect(swaps).toBeGreaterThan(30);
    expect(readdirSync(outside)).toEqual([]);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(outside);
    // Under the swapping a run may fail cleanly or miss its mount (the
    // directory it was made on is swapped away); afterwards, with the
    // symlink to the host in place, the target is made inside the root.
    rmSync(link, { recursive: true, force: true });
    symlinkSync(outside, link);
    const r = await dokrust(["-r", rootfs, "-m", `${src}:/mnt/swap/deep/target`, ...sh("cat /mnt/swap/deep/target/marker")]);
    expect(r.stdout).toBe("bound\n");
    expect(readdirSync(outside)).toEqual([]);
    expect(existsSync(`${rootfs}${outside}/deep/target`)).toBe(true);
    expect(results.length).toBe(30);
  }, 60_000);

  for (const which of ["proc", "sys"] as const) {
    test(`/${which} in the rootfs as a symlink to a host directory is refused (as runc does), with one clear line; the host directory is untouched`, async () => {
      const rootfs = fixtureCopy();
      const outside = tempDir(`outside-${which}`);
      rmSync(`${rootfs}/${which}`, { recursive: true, force: true });
      symlinkSync(outside, `${rootfs}/${which}`);
      const r = await dokrust(["-r", rootfs, "--", "true"]);
      expect(r.code).toBe(125);
      expect(r.stderr).toBe(`dokrust: mount ${which === "proc" ? "proc" : "sysfs"} on ${rootfs}/${which}: the target is a symlink (proc and sysfs go on real directories only): ELOOP\n`);
      expect(readdirSync(outside)).toEqual([]);
      expect(existsSync(`${rootfs}${outside}`)).toBe(false);
      expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(outside);
    });
  }

  test("/proc in the rootfs that is a bind of a host directory (not procfs): proc is mounted over it inside the container only", async () => {
    const rootfs = fixtureCopy();
    const outside = tempDir("outside-bind");
    writeFileSync(`${outside}/fake-status`, "not procfs\n");
    const mount = Bun.spawnSync(["mount", "--bind", outside, `${rootfs}/proc`]);
    expect(mount.exitCode).toBe(0);
    try {
      const r = await dokrust(["-r", rootfs, ...sh("ls /proc/fake-status 2>/dev/null; grep ' /proc ' /proc/self/mountinfo | grep -c ' - proc '")]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("1\n");
      expect(readdirSync(outside)).toEqual(["fake-status"]);
    } finally {
      Bun.spawnSync(["umount", `${rootfs}/proc`]);
    }
  });
});

describe.skipIf(!runnable)("escapes through /proc and /sys", () => {
  test("writes to /proc/sys, /proc/sysrq-trigger and the other read-only paths fail; masked paths read nothing; none can be remounted or unmounted", async () => {
    const script = [
      "for f in /proc/sys/kernel/domainname /proc/sys/vm/drop_caches /proc/sysrq-trigger /proc/sys/kernel/core_pattern /sys/kernel/uevent_helper /sys/fs/cgroup/cgroup.procs; do",
      "  (echo 0 > $f) 2>/dev/null && echo WROTE $f",
      "done",
      "for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats; do",
      "  [ -e $f ] && [ -n \"$(head -c 16 $f 2>/dev/null)\" ] && echo READ $f",
      "done",
      "ls /sys/firmware /proc/scsi /proc/acpi 2>/dev/null | grep -v ':$' | grep . && echo LISTED",
      "mount -o remount,rw /proc/sys 2>/dev/null && echo REMOUNTED",
      "umount /proc/kcore 2>/dev/null && echo UNMOUNTED",
      "umount -l /proc/sys 2>/dev/null && echo UNMOUNTED-sys",
      "mount -t proc proc /tmp 2>/dev/null && echo MOUNTED",
      "echo end",
    ].join("\n");
    const before = readFileSync("/proc/sys/kernel/core_pattern", "utf8");
    const r = await dokrust(["-r", fixtureCopy(), ...sh(script)]);
    expect(r.stdout).toBe("end\n");
    expect(readFileSync("/proc/sys/kernel/core_pattern", "utf8")).toBe(before);
  });
});

describe.skipIf(!runnable)("escapes through devices", () => {
  test("a device node shipped in the rootfs and one made with mknod inside cannot be opened (devices cgroup)", async () => {
    const rootfs = fixtureCopy();
    // the host's root file system's block device, and /dev/mem: read-only attempts, never a write
    const dev = statSync("/").dev;
    const major = Math.floor(dev / 256) & 0xfff;
    const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    expect(Bun.spawnSync(["mknod", `${rootfs}/dev-disk`, "b", String(major), String(minor)]).exitCode).toBe(0);
    expect(Bun.spawnSync(["mknod", `${rootfs}/dev-mem`, "c", "1", "1"]).exitCode).toBe(0);
    const script = [
      "for f in /dev-disk /dev-mem; do head -c 1 $f > /dev/null 2>/tmp/err && echo OPENED $f; grep -q 'not permitted' /tmp/err || cat /tmp/err; done",
      `mknod /tmp/disk b ${major} ${minor} 2>/dev/null && head -c 1 /tmp/disk >/dev/null 2>&1 && echo OPENED-made`,
      // making a node is allowed, as with docker (CAP_MKNOD, cgroup rule "c *:* m"); using it is not
      "mknod /tmp/kmsg c 1 11 2>/dev/null && head -c 1 /tmp/kmsg >/dev/null 2>&1 && echo OPENED-kmsg",
      "head -c 1 /dev/null && echo null-ok",
    ].join("\n");
    const r = await dokrust(["-r", rootfs, ...sh(script)]);
    expect(r.stdout).toBe("null-ok\n");
  });
});

describe.skipIf(!runnable)("escapes through privileges", () => {
  /** A rootfs with /suid-probe: the probe, setuid root. */
  function suidRoot(): string {
    const rootfs = probeRoot();
    copyFileSync(probe, `${rootfs}/suid-probe`);
    chownSync(`${rootfs}/suid-probe`, 0, 0);
    chmodSync(`${rootfs}/suid-probe`, 0o4755);
    return rootfs;
  }

  test("a setuid-root binary run as uid 1000 does not gain uid 0 with no-new-privileges (and does without: the test is real)", async () => {
    const rootfs = suidRoot();
    const guarded = await dokrust(["-r", rootfs, "-u", "1000", "--security-opt", "no-new-privileges", "--", "/suid-probe", "ids"]);
    expect(guarded.stderr).toBe("");
    expect(guarded.stdout).toBe("1000 1000 1000\n");
    const control = await dokrust(["-r", rootfs, "-u", "1000", "--", "/suid-probe", "ids"]);
    expect(control.stdout).toBe("1000 0 0\n");
  });

  test("the OCI face's noNewPrivileges: true (its default) keeps a setuid binary from gaining uid 0", async () => {
    const rootfs = suidRoot();
    const bundle = tempDir("bundle");
    const { defaultSpec } = await import("../../src/spec/defaults.ts");
    const spec = defaultSpec();
    spec.root = { path: rootfs, readonly: true };
    spec.process!.terminal = false;
    spec.process!.user = { uid: 1000, gid: 1000 };
    spec.process!.args = ["/suid-probe", "ids"];
    writeFileSync(`${bundle}/config.json`, JSON.stringify(spec));
    const root = tempDir("oci-root");
    const r = await start([BIN, "--root", root, "run", "--bundle", bundle, `dokrust-test-nnp-${process.pid}`]).result;
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("1000 1000 1000\n");
  });

  const DEFAULT = capabilityMask(DEFAULT_CAPABILITIES);
  const NET_ADMIN = 1n << 12n;
  const CHOWN = 1n << 0n;
  type CapSets = Record<"CapInh" | "CapPrm" | "CapEff" | "CapBnd" | "CapAmb", bigint>;
  const cases: Array<[string, string[], CapSets]> = [
    ["the default set", [], { CapInh: 0n, CapPrm: DEFAULT, CapEff: DEFAULT, CapBnd: DEFAULT, CapAmb: 0n }],
    ["--cap-add NET_ADMIN adds exactly that", ["--cap-add", "NET_ADMIN"], { CapInh: 0n, CapPrm: DEFAULT | NET_ADMIN, CapEff: DEFAULT | NET_ADMIN, CapBnd: DEFAULT | NET_ADMIN, CapAmb: 0n }],
    ["--cap-drop CHOWN removes exactly that", ["--cap-drop", "CHOWN"], { CapInh: 0n, CapPrm: DEFAULT & ~CHOWN, CapEff: DEFAULT & ~CHOWN, CapBnd: DEFAULT & ~CHOWN, CapAmb: 0n }],
    ["a non-root user keeps none but the bounding set", ["-u", "1000"], { CapInh: 0n, CapPrm: 0n, CapEff: 0n, CapBnd: DEFAULT, CapAmb: 0n }],
  ];
  for (const [what, args, want] of cases) {
    test(`capabilities are exactly those asked for: ${what} (CapInh/CapPrm/CapEff/CapBnd/CapAmb)`, async () => {
      const r = await dokrust(["-r", fixtureCopy(), ...args, "--", "cat", "/proc/self/status"]);
      expect(r.code).toBe(0);
      const caps = capabilities(r.stdout);
      expect({ CapInh: caps.CapInh, CapPrm: caps.CapPrm, CapEff: caps.CapEff, CapBnd: caps.CapBnd, CapAmb: caps.CapAmb }).toEqual(want);
    });
  }
});
