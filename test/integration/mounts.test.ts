/**
 * -m SRC:DST bind mounts: directories and single files, :ro, targets
 * created inside the rootfs when missing, and targets that are always
 * resolved inside the rootfs, even through a symlink that points out of
 * it.  Tests that create files in a rootfs work on a copy.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { DEBIAN, dokrust, fixtureCopy, haveDebian, parseMountinfo, ready, sh, tempDir, tempPath, useLeakCheck } from "./helpers.ts";

useLeakCheck();

describe.skipIf(!ready)("bind mounts", () => {
  test("a directory: its files are seen inside, and what the container writes reaches the host", async () => {
    const data = tempDir("data");
    writeFileSync(`${data}/x`, "from the host\n");
    const r = await dokrust(["-r", fixtureCopy(), "-m", `${data}:/data`, ...sh("cat /data/x; echo from the container > /data/y")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("from the host\n");
    expect(readFileSync(`${data}/y`, "utf8")).toBe("from the container\n");
  });

  test("a single file, over an existing file or at a new path", async () => {
    const rootfs = fixtureCopy();
    const file = tempPath("file");
    writeFileSync(file, "one file\n");
    const r = await dokrust([
      "-r", rootfs, "-m", `${file}:/etc/passwd`, "-m", `${file}:/new/dir/file.txt`,
      ...sh("cat /etc/passwd /new/dir/file.txt; [ -f /new/dir/file.txt ] && echo regular"),
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("one file\none file\nregular\n");
    // the rootfs's own file is untouched; the new target is an empty file
    expect(readFileSync(`${rootfs}/etc/passwd`, "utf8")).toStartWith("root:x:0:0:");
    expect(statSync(`${rootfs}/new/dir/file.txt`).size).toBe(0);
  });

  test("a host directory bound on /dev gets no device nodes or links written into it", async () => {
    const devdir = tempDir("dev");
    writeFileSync(`${devdir}/null`, "");
    const r = await dokrust(["-r", fixtureCopy(), "-m", `${devdir}:/dev`, ...sh("ls /dev")]);
    expect(r.stdout).toBe("null\n");
    expect(readdirSync(devdir)).toEqual(["null"]);
    expect(statSync(`${devdir}/null`).isFile()).toBe(true);
  });

  test(":ro makes the bind read-only inside; the host side is unchanged", async () => {
    const data = tempDir("data");
    writeFileSync(`${data}/x`, "keep\n");
    const r = await dokrust(["-r", fixtureCopy(), "-m", `${data}:/data:ro`, ...sh("cat /data/x; echo no > /data/x; echo write=$?; touch /data/new; echo create=$?")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("keep\nwrite=1\ncreate=1\n");
    expect(r.stderr).toContain("Read-only file system");
    expect(readdirSync(data)).toEqual(["x"]);
    expect(readFileSync(`${data}/x`, "utf8")).toBe("keep\n");
  });

  test("a missing target is created inside the rootfs, nested directories included", async () => {
    const rootfs = fixtureCopy();
    const data = tempDir("data");
    writeFileSync(`${data}/x`, "deep\n");
    const r = await dokrust(["-r", rootfs, "-m", `${data}:/a/b/c`, ...sh("cat /a/b/c/x; grep ' /a/b/c ' /proc/self/mountinfo | wc -l")]);
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/ +/g, "")).toBe("deep\n1\n");
    expect(statSync(`${rootfs}/a/b/c`).isDirectory()).toBe(true);
    expect(readdirSync(`${rootfs}/a/b/c`)).toEqual([]);
  });

  test("several -m, each in its place, in the mountinfo with its host source", async () => {
    const one = tempDir("one");
    const two = tempDir("two");
    const r = await dokrust(["-r", fixtureCopy(), "-m", `${one}:/one`, "-m", `${two}:/two:ro`, ...sh("cat /proc/self/mountinfo")]);
    expect(r.code).toBe(0);
    const mounts = parseMountinfo(r.stdout);
    const at = (p: string) => mounts.find((m) => m.point === p);
    expect(at("/one")?.root).toBe(one);
    expect(at("/one")?.options).toContain("rw");
    expect(at("/two")?.root).toBe(two);
    expect(at("/two")?.options).toContain("ro");
  });

  test("a target under a symlink that points out of the rootfs stays inside the rootfs", async () => {
    const rootfs = fixtureCopy();
    const outside = tempDir("outside");
    const data = tempDir("data");
    writeFileSync(`${data}/x`, "bound\n");
    // /mnt -> the host's "outside" directory (absolute), /up -> ../../.. of it (relative)
    symlinkSync(outside, `${rootfs}/mnt`);
    symlinkSync(`../../../../../..${outside}`, `${rootfs}/up`);
    mkdirSync(`${rootfs}${outside}`, { recursive: true });
    const r = await dokrust(["-r", rootfs, "-m", `${data}:/mnt/x`, "-m", `${data}:/up/y`, ...sh("cat /mnt/x/x /up/y/x")]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("bound\nbound\n");
    // nothing appeared on the host's side of the links
    expect(readdirSync(outside)).toEqual([]);
    // the targets were made where the links lead inside the rootfs
    expect(readdirSync(`${rootfs}${outside}`).sort()).toEqual(["x", "y"]);
  });

  test("a symlink leading out of the rootfs to nowhere in it never reaches the host", async () => {
    const rootfs = fixtureCopy();
    const outside = tempDir("outside");
    const data = tempDir("data");
    symlinkSync(outside, `${rootfs}/mnt`);
    const r = await dokrust(["-r", rootfs, "-m", `${data}:/mnt/x`, ...sh("true")]);
    // Whatever the outcome, the host's directory stays empty.
    expect(readdirSync(outside)).toEqual([]);
    expect(existsSync(`${outside}/x`)).toBe(false);
    expect([0, 125]).toContain(r.code);
  });

  // dokrust should create the link's target inside the rootfs (as runc's
  // securejoin MkdirAll does) and mount there; native/exec.c's mkdir_p
  // instead fails with ENOENT on a dangling in-root symlink (see report).
  test("a target under a symlink to a path missing in the rootfs is created inside the rootfs", async () => {
    const rootfs = fixtureCopy();
    const outside = tempDir("outside");
    const data = tempDir("data");
    writeFileSync(`${data}/x`, "bound\n");
    symlinkSync(outside, `${rootfs}/mnt`);
    const r = await dokrust(["-r", rootfs, "-m", `${data}:/mnt/x`, ...sh("cat /mnt/x/x")]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("bound\n");
    expect(readdirSync(outside)).toEqual([]);
    expect(statSync(`${rootfs}${outside}/x`).isDirectory()).toBe(true);
  });

  if (haveDebian) {
    test("binds onto an existing directory of the Debian rootfs", async () => {
      const data = tempDir("data");
      writeFileSync(`${data}/x`, "on debian\n");
      const r = await dokrust(["-r", DEBIAN, "-m", `${data}:/mnt:ro`, ...sh("cat /mnt/x; findmnt -n -o OPTIONS /mnt | cut -d, -f1")]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("on debian\nro\n");
    });
  }
});
