/**
 * The dokrust command line end to end on real root file systems: the
 * original options (-r, -c, -n, --, the ../rootfs default) and docker's
 * (-e, -w, -u, --read-only), checked from inside the container.
 */
import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import {
  BUSYBOX,
  DEBIAN,
  capabilities,
  dokrust,
  fixtureCopy,
  haveDebian,
  ready,
  sh,
  tempDir,
  useLeakCheck,
} from "./helpers.ts";

useLeakCheck();

const FIXTURES: Array<[string, string]> = [["busybox", BUSYBOX], ...(haveDebian ? [["debian", DEBIAN] as [string, string]] : [])];

describe.skipIf(!ready)("dokrust run", () => {
  for (const [name, rootfs] of FIXTURES) {
    test(`runs the command as pid 1, root, on hostname dokka (${name})`, async () => {
      const r = await dokrust(["-r", rootfs, ...sh('hostname; id; echo "pid $$"; cat /proc/1/cmdline | tr "\\0" " "')]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const [hostname, id, pid, cmdline] = r.stdout.split("\n");
      expect(hostname).toBe("dokka");
      expect(id).toMatch(/^uid=0\(root\) gid=0\(root\)/);
      expect(pid).toBe("pid 1");
      expect(cmdline).toStartWith("/bin/sh -c hostname;");
    });

    test(`-n sets the hostname; 64 bytes is the most (${name})`, async () => {
      const long = `${"a".repeat(31)}.${"b".repeat(32)}`;
      expect(long.length).toBe(64);
      for (const hostname of ["box", long]) {
        const r = await dokrust(["-r", rootfs, "-n", hostname, ...sh("hostname; cat /etc/hostname; echo $HOSTNAME")]);
        expect(r.code).toBe(0);
        expect(r.stdout).toBe(`${hostname}\n${hostname}\n${hostname}\n`);
      }
    });

    test(`-u 1000:1000 runs as that uid and gid with no effective capabilities (${name})`, async () => {
      const r = await dokrust(["-r", rootfs, "-u", "1000:1000", ...sh("id -u; id -g; cat /proc/self/status")]);
      expect(r.code).toBe(0);
      const [uid, gid] = r.stdout.split("\n");
      expect([uid, gid]).toEqual(["1000", "1000"]);
      const caps = capabilities(r.stdout);
      expect(caps.CapEff).toBe(0n);
      expect(caps.CapPrm).toBe(0n);
      expect(caps.CapAmb).toBe(0n);
      // the bounding set stays docker's: setuid binaries cannot exceed it
      expect(caps.CapBnd).toBe(0xa80425fbn);
    });

    test(`-e sets variables next to the defaults (${name})`, async () => {
      const r = await dokrust(["-r", rootfs, "-e", "FOO=bar baz", "-e", "EMPTY=", "-e", "HOME=/elsewhere", ...sh('echo "$FOO|$EMPTY|$HOME|$PATH"')]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("bar baz||/elsewhere|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
    });
  }

  test("a hostname or rootfs spelled like a runc command still runs a container", async () => {
    for (const word of ["start", "run", "list", "exec"]) {
      const r = await dokrust(["-r", BUSYBOX, "-n", word, "--", "hostname"]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe(`${word}\n`);
    }
  });

  test("-c runs CMD through /bin/sh -c, the words after -- following it", async () => {
    const r = await dokrust(["-r", BUSYBOX, "-c", 'echo "$0:$1:$2"', "--", "zero", "one", "two words"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("zero:one:two words\n");
  });

  test("with no command, /bin/sh runs (and reads no stdin without -i)", async () => {
    const r = await dokrust(["-r", BUSYBOX]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
  });

  test("-w sets the working directory, creating it inside the rootfs when missing", async () => {
    const rootfs = fixtureCopy();
    const r = await dokrust(["-r", rootfs, "-w", "/new/work dir", ...sh("pwd; touch here")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("/new/work dir\n");
    expect(Bun.file(`${rootfs}/new/work dir/here`).size).toBe(0);
  });

  if (haveDebian) {
    test("-w with an existing directory leaves it as it is (debian)", async () => {
      const r = await dokrust(["-r", DEBIAN, "-w", "/usr/share", ...sh("pwd")]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("/usr/share\n");
    });
  }

  test("-u UID alone takes the same number as the gid; HOME is / for a non-root user", async () => {
    const r = await dokrust(["-r", BUSYBOX, "-u", "4242", ...sh("id -u; id -g; echo $HOME")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("4242\n4242\n/\n");
  });

  test("--read-only makes the rootfs read-only; /dev/shm and bind mounts stay writable", async () => {
    const data = tempDir("data");
    const r = await dokrust([
      "-r", fixtureCopy(), "--read-only", "-m", `${data}:/data`,
      ...sh("touch /x 2>&1; echo root=$?; touch /tmp/x 2>&1; echo tmp=$?; touch /dev/shm/x; echo shm=$?; echo hi > /data/y; echo data=$?"),
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Read-only file system\nroot=1\n/);
    expect(r.stdout).toContain("tmp=1\n");
    expect(r.stdout).toContain("shm=0\ndata=0\n");
    expect(await Bun.file(`${data}/y`).text()).toBe("hi\n");
  });

  test("without --read-only the rootfs is writable", async () => {
    const rootfs = fixtureCopy();
    const r = await dokrust(["-r", rootfs, ...sh("echo hi > /written")]);
    expect(r.code).toBe(0);
    expect(await Bun.file(`${rootfs}/written`).text()).toBe("hi\n");
  });

  test("without -r, ../rootfs is the root file system", async () => {
    const top = tempDir("default");
    const rootfs = fixtureCopy();
    Bun.spawnSync(["mv", rootfs, `${top}/rootfs`]);
    writeFileSync(`${top}/rootfs/marker`, "the default rootfs\n");
    mkdirSync(`${top}/work`);
    const r = await dokrust(sh("cat /marker"), { cwd: `${top}/work` });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("the default rootfs\n");
  });

  test("-r takes a path relative to the working directory", async () => {
    const rootfs = fixtureCopy();
    const cwd = tempDir("cwd");
    const r = await dokrust(["-r", `../${rootfs.split("/").pop()}`, ...sh("hostname")], { cwd });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("dokka\n");
  });

  test("--help prints the usage with every option", async () => {
    const r = await dokrust(["--help"]);
    expect(r.code).toBe(0);
    for (const option of ["--rootfs", "--command", "--hostname", "--quota", "--mount", "--interactive", "--tty", "--env", "--workdir", "--user", "--cpus", "--memory", "--pids-limit", "--read-only", "--cap-add", "--cap-drop", "--name", "--rm"]) {
      expect(r.stdout).toContain(option);
    }
  });
});
