/**
 * unpackLayer(): what real layers contain (whiteouts, opaque directories,
 * hard links, symlinks, devices, owners, modes, xattrs, long names) and
 * what hostile ones try (paths out of the layer).  Archives are built
 * here with tar-stream.  Whiteouts, devices and trusted.* attributes need
 * root; those tests are skipped without it.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync } from "node:fs";
import { lgetxattr } from "../../src/native/fs.ts";
import { entryComponents, unpackLayer } from "../../src/image/unpack.ts";
import { isRoot, makeTar, scratchDir, streamOf, type Entry } from "./image_helpers.ts";

let cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups) c();
  cleanups = [];
});

/** Unpack `entries` into a fresh directory; returns it. */
async function unpack(entries: Entry[]): Promise<string> {
  const { dir, cleanup } = scratchDir("unpack");
  cleanups.push(cleanup);
  const layer = `${dir}/layer`;
  mkdirSync(layer);
  await unpackLayer(streamOf(await makeTar(entries)), layer, { what: "layer 1" });
  return layer;
}

async function unpackError(entries: Entry[]): Promise<string> {
  try {
    await unpack(entries);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("unpack succeeded");
}

describe("entryComponents()", () => {
  test("drops . and empty components", () => {
    expect(entryComponents("./a//b/./c/", "x")).toEqual(["a", "b", "c"]);
    expect(entryComponents("./", "x")).toEqual([]);
  });
  test("refuses .. and absolute names", () => {
    expect(() => entryComponents("a/../../etc/passwd", "x")).toThrow("path escapes the layer");
    expect(() => entryComponents("/etc/passwd", "x")).toThrow("absolute path refused");
  });
});

describe("unpackLayer()", () => {
  test("files, directories, symlinks, modes and times", async () => {
    const mtime = new Date(1_600_000_000_000);
    const layer = await unpack([
      { name: "./", type: "directory", mode: 0o755 },
      { name: "bin/", type: "directory", mode: 0o755 },
      { name: "bin/tool", content: "#!/bin/sh\n", mode: 0o4755, mtime },
      { name: "bin/link", type: "symlink", linkname: "/bin/tool" },
      { name: "ro/", type: "directory", mode: 0o555 },
      { name: "ro/file", content: "x" },
    ]);
    expect(readFileSync(`${layer}/bin/tool`, "utf8")).toBe("#!/bin/sh\n");
    expect(statSync(`${layer}/bin/tool`).mode & 0o7777).toBe(0o4755);
    expect(statSync(`${layer}/bin/tool`).mtimeMs).toBe(mtime.getTime());
    expect(readlinkSync(`${layer}/bin/link`)).toBe("/bin/tool");
    expect(statSync(`${layer}/ro`).mode & 0o7777).toBe(0o555);
    expect(readFileSync(`${layer}/ro/file`, "utf8")).toBe("x");
  });

  test("missing parent directories are created", async () => {
    const layer = await unpack([{ name: "a/b/c/file", content: "deep" }]);
    expect(readFileSync(`${layer}/a/b/c/file`, "utf8")).toBe("deep");
  });

  test("a later entry replaces an earlier one of the same name", async () => {
    const layer = await unpack([
      { name: "x", content: "first" },
      { name: "x", content: "second" },
      { name: "d/", type: "directory" },
      { name: "d/f", content: "in d" },
      { name: "d", type: "symlink", linkname: "elsewhere" },
    ]);
    expect(readFileSync(`${layer}/x`, "utf8")).toBe("second");
    expect(readlinkSync(`${layer}/d`)).toBe("elsewhere");
  });

  test("hard links share the inode", async () => {
    const layer = await unpack([
      { name: "etc/", type: "directory" },
      { name: "etc/h1", content: "same" },
      { name: "etc/h2", type: "link", linkname: "etc/h1" },
      { name: "./etc/h3", type: "link", linkname: "./etc/h1" },
    ]);
    const ino = statSync(`${layer}/etc/h1`).ino;
    expect(statSync(`${layer}/etc/h2`).ino).toBe(ino);
    expect(statSync(`${layer}/etc/h3`).ino).toBe(ino);
    expect(statSync(`${layer}/etc/h1`).nlink).toBe(3);
  });

  test("PAX long names and long link targets", async () => {
    const deep = `${"d".repeat(90)}/${"e".repeat(90)}/${"f".repeat(120)}`;
    const target = `/${"t".repeat(200)}`;
    const layer = await unpack([
      { name: deep, content: "long" },
      { name: "ln", type: "symlink", linkname: target },
    ]);
    expect(readFileSync(`${layer}/${deep}`, "utf8")).toBe("long");
    expect(readlinkSync(`${layer}/ln`)).toBe(target);
  });

  test("GNU long names (././@LongLink)", async () => {
    const name = `gnu/${"g".repeat(150)}`;
    const layer = await unpack([{ name, content: "gnu", gnuLongName: true }]);
    expect(readFileSync(`${layer}/${name}`, "utf8")).toBe("gnu");
  });

  test("binary extended attributes survive the PAX records byte for byte", async () => {
    const value = new Uint8Array([0x01, 0x00, 0x00, 0x02, 0xff, 0xfe, 0x80, 0x00]);
    const layer = await unpack([{ name: "f", content: "x", pax: { "SCHILY.xattr.user.bin": value } }]);
    const got = lgetxattr(`${layer}/f`, "user.bin");
    expect(got && [...got]).toEqual([...value]);
  });

  test("trusted.overlay.* attributes from the archive are not applied", async () => {
    const layer = await unpack([{ name: "d/", type: "directory", pax: { "SCHILY.xattr.trusted.overlay.opaque": "y" } }]);
    expect(lgetxattr(`${layer}/d`, "trusted.overlay.opaque")).toBeUndefined();
  });

  test.skipIf(!isRoot)("owners are set (root)", async () => {
    const layer = await unpack([
      { name: "home/", type: "directory", uid: 1000, gid: 1000 },
      { name: "home/f", content: "x", uid: 1000, gid: 100, mode: 0o2755 },
      { name: "home/l", type: "symlink", linkname: "f", uid: 7, gid: 8 },
    ]);
    expect(statSync(`${layer}/home`).uid).toBe(1000);
    expect(statSync(`${layer}/home/f`).gid).toBe(100);
    // set-gid survives the chown (the mode is set after it)
    expect(statSync(`${layer}/home/f`).mode & 0o7777).toBe(0o2755);
    expect(lstatSync(`${layer}/home/l`).uid).toBe(7);
  });

  test.skipIf(!isRoot)("device nodes and fifos", async () => {
    const layer = await unpack([
      { name: "dev/null", type: "character-device", devmajor: 1, devminor: 3, mode: 0o666 },
      { name: "dev/loop9", type: "block-device", devmajor: 7, devminor: 9, mode: 0o660 },
      { name: "run/fifo", type: "fifo", mode: 0o600 },
    ]);
    const nul = lstatSync(`${layer}/dev/null`);
    expect(nul.isCharacterDevice()).toBe(true);
    expect(nul.rdev).toBe(Number((1n << 8n) | 3n));
    expect(lstatSync(`${layer}/dev/loop9`).isBlockDevice()).toBe(true);
    expect(lstatSync(`${layer}/run/fifo`).isFIFO()).toBe(true);
  });

  test.skipIf(!isRoot)("a whiteout becomes a 0/0 character device, in overlayfs form", async () => {
    const layer = await unpack([
      { name: "etc/", type: "directory" },
      { name: "etc/.wh.motd", content: "" },
      { name: ".wh.gone", content: "" },
    ]);
    for (const p of ["etc/motd", "gone"]) {
      const st = lstatSync(`${layer}/${p}`);
      expect(st.isCharacterDevice()).toBe(true);
      expect(st.rdev).toBe(0);
    }
    expect(existsSync(`${layer}/etc/.wh.motd`)).toBe(false);
  });

  test.skipIf(!isRoot)("an opaque whiteout marks its directory trusted.overlay.opaque=y", async () => {
    const layer = await unpack([
      { name: "var/", type: "directory" },
      { name: "var/cache/", type: "directory" },
      { name: "var/cache/.wh..wh..opq", content: "" },
      { name: "var/cache/kept", content: "k" },
    ]);
    expect(new TextDecoder().decode(lgetxattr(`${layer}/var/cache`, "trusted.overlay.opaque"))).toBe("y");
    expect(readdirSync(`${layer}/var/cache`)).toEqual(["kept"]);
  });

  test.skipIf(!isRoot)("a whiteout does not hide what its own layer holds", async () => {
    const layer = await unpack([
      { name: "f", content: "mine" },
      { name: ".wh.f", content: "" },
    ]);
    expect(readFileSync(`${layer}/f`, "utf8")).toBe("mine");
  });

  test.skipIf(!isRoot)("a directory replacing a whiteout of the same layer is opaque", async () => {
    const layer = await unpack([
      { name: ".wh.d", content: "" },
      { name: "d/", type: "directory" },
    ]);
    expect(lstatSync(`${layer}/d`).isDirectory()).toBe(true);
    expect(new TextDecoder().decode(lgetxattr(`${layer}/d`, "trusted.overlay.opaque"))).toBe("y");
  });
});

describe("unpackLayer() refuses paths out of the layer", () => {
  test("../ in a name", async () => {
    expect(await unpackError([{ name: "../escape", content: "x" }])).toContain("path escapes the layer");
    expect(await unpackError([{ name: "a/../../escape", content: "x" }])).toContain("path escapes the layer");
  });

  test("an absolute name", async () => {
    expect(await unpackError([{ name: "/etc/escape", content: "x" }])).toContain("absolute path refused");
  });

  test("writing through a symlink to a directory outside", async () => {
    const { dir, cleanup } = scratchDir("outside");
    cleanups.push(cleanup);
    const message = await unpackError([
      { name: "evil", type: "symlink", linkname: dir },
      { name: "evil/planted", content: "x" },
    ]);
    expect(message).toContain("is a symlink");
    expect(readdirSync(dir)).toEqual([]);
  });

  test("writing through a relative symlink that climbs out", async () => {
    const message = await unpackError([
      { name: "a/", type: "directory" },
      { name: "a/up", type: "symlink", linkname: "../../../../tmp" },
      { name: "a/up/planted", content: "x" },
    ]);
    expect(message).toContain("is a symlink");
  });

  test("a whiteout through a symlink", async () => {
    const { dir, cleanup } = scratchDir("outside");
    cleanups.push(cleanup);
    symlinkSync("/dev/null", `${dir}/victim`);
    const message = await unpackError([
      { name: "evil", type: "symlink", linkname: dir },
      { name: "evil/.wh.victim", content: "" },
    ]);
    expect(message).toContain("is a symlink");
    expect(readlinkSync(`${dir}/victim`)).toBe("/dev/null");
  });

  test("a hard link to a file outside the layer", async () => {
    expect(await unpackError([{ name: "pw", type: "link", linkname: "../../../../etc/passwd" }])).toContain("path escapes the layer");
    expect(await unpackError([{ name: "pw", type: "link", linkname: "/etc/passwd" }])).toContain("absolute path refused");
    expect(await unpackError([{ name: "pw", type: "link", linkname: "etc/passwd" }])).toContain("does not exist");
  });

  test("a hard link through a symlink of the layer", async () => {
    const message = await unpackError([
      { name: "hostetc", type: "symlink", linkname: "/etc" },
      { name: "pw", type: "link", linkname: "hostetc/passwd" },
    ]);
    expect(message).toContain("is a symlink");
  });

  test("a truncated archive is one clear error", async () => {
    const bytes = await makeTar([{ name: "big", content: "x".repeat(5000) }]);
    const { dir, cleanup } = scratchDir("trunc");
    cleanups.push(cleanup);
    const err = await unpackLayer(streamOf(bytes.subarray(0, 2000)), dir, { what: "layer 1" }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^layer 1: (truncated|corrupt)/);
  });

  test("garbage is not a tar archive", async () => {
    const { dir, cleanup } = scratchDir("garbage");
    cleanups.push(cleanup);
    const err = await unpackLayer(streamOf(new Uint8Array(2048).fill(0x41)), dir, { what: "layer 1" }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^layer 1: (corrupt|not a tar)/);
  });
});
