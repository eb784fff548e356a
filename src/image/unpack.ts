/**
 * Unpacking one layer (a tar stream) into its own directory, in the form
 * overlayfs reads as a lower directory: a whiteout `.wh.NAME` becomes a
 * character device 0/0 named NAME, and `.wh..wh..opq` becomes the
 * `trusted.overlay.opaque=y` attribute of its directory.  Each layer is
 * unpacked on its own (never over the layers below it), once, and shared.
 *
 * Safety: the archive is untrusted.  No entry may land outside the layer
 * directory: names with `..` or a leading `/` are refused, every parent
 * of an entry must be a real directory of this layer (an entry whose
 * parent path crosses a symlink is refused, so nothing is ever written
 * through a link), hard links must point at a file already unpacked in
 * this layer, and nothing is opened or changed following a symlink
 * (O_NOFOLLOW, lchown, lutimes, lsetxattr).  The directory being filled
 * is private to the importing process (a temporary directory in the
 * store, under the store's lock), so checking with lstat before acting is
 * not racy: only this archive changes it, one entry at a time.
 */
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  type Stats,
} from "node:fs";
import type { Readable } from "node:stream";
import { DokrustError } from "../errors.ts";
import { lsetxattr, makeDev, mknod } from "../native/fs.ts";
import { headerXattrs, tarEntries, tarError, type EntryStream, type TarHeader } from "./tar.ts";

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const WHITEOUT_PREFIX = ".wh.";
const OPAQUE = ".wh..wh..opq";
const OPAQUE_XATTR = "trusted.overlay.opaque";

export interface UnpackOptions {
  /** Name of the layer in errors ("layer sha256:…"). */
  what: string;
  /** Set owners from the archive (needs root; off: files belong to the caller). */
  owners?: boolean;
}

export interface UnpackResult {
  entries: number;
  /** Entries that could not be made without privilege (device nodes). */
  skipped: string[];
}

/**
 * The path components of an entry name, without "." and empty ones.
 * Throws on an absolute name or one with "..": such an entry could land
 * outside the layer.
 */
export function entryComponents(name: string, what: string): string[] {
  if (name.startsWith("/")) throw new DokrustError(`${what}: entry ${JSON.stringify(name)}: absolute path refused`);
  if (name.includes("\0")) throw new DokrustError(`${what}: entry ${JSON.stringify(name)}: NUL in name`);
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new DokrustError(`${what}: entry ${JSON.stringify(name)}: path escapes the layer (..)`);
  return parts;
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/**
 * A directory tree being filled from an archive: resolves entry names
 * to paths inside it, creating missing parents and refusing any parent
 * that is not a real directory.
 */
export class SafeTree {
  readonly root: string;
  readonly what: string;
  /** Directories known to be real directories of this tree. */
  #dirs = new Set<string>();

  constructor(root: string, what: string) {
    this.root = root;
    this.what = what;
    this.#dirs.add(root);
  }

  /** The host path of `parts` (no check). */
  path(parts: readonly string[]): string {
    return parts.length ? `${this.root}/${parts.join("/")}` : this.root;
  }

  /** Make sure every parent of `parts` is a real directory; create missing ones when `create`. */
  parents(parts: readonly string[], name: string, create = true): void {
    let path = this.root;
    for (const part of parts.slice(0, -1)) {
      path = `${path}/${part}`;
      if (this.#dirs.has(path)) continue;
      const st = lstatOrUndefined(path);
      if (!st) {
        if (!create) throw new DokrustError(`${this.what}: entry ${JSON.stringify(name)}: ${path.slice(this.root.length + 1)} does not exist`);
        mkdirSync(path, { mode: 0o755 });
      } else if (st.isSymbolicLink()) {
        throw new DokrustError(`${this.what}: entry ${JSON.stringify(name)}: its parent ${path.slice(this.root.length + 1)} is a symlink (refused: it could lead out of the layer)`);
      } else if (!st.isDirectory()) {
        throw new DokrustError(`${this.what}: entry ${JSON.stringify(name)}: its parent ${path.slice(this.root.length + 1)} is not a directory`);
      }
      this.#dirs.add(path);
    }
  }

  /** Remove what is at `path` (unless it is a directory and `keepDir`); the old lstat, if any. */
  clear(path: string, keepDir: boolean): Stats | undefined {
    const st = lstatOrUndefined(path);
    if (!st) return undefined;
    if (st.isDirectory()) {
      if (keepDir) return st;
      rmSync(path, { recursive: true, force: true });
      for (const dir of this.#dirs) if (dir === path || dir.startsWith(`${path}/`)) this.#dirs.delete(dir);
    } else {
      unlinkSync(path);
    }
    return st;
  }

  /** Record that `path` is a real directory now. */
  addDir(path: string): void {
    this.#dirs.add(path);
  }
}

interface Deferred {
  path: string;
  mode: number;
  mtime: Date | undefined;
}

/** Unpacks one archive into a SafeTree; one instance per layer. */
class Unpacker {
  readonly #tree: SafeTree;
  readonly #options: UnpackOptions;
  readonly #owners: boolean;
  readonly #root = process.getuid?.() === 0;
  /** Directory modes and times, set at the end: children change a directory's mtime. */
  readonly #dirs: Deferred[] = [];
  /** Whiteouts this layer made, so that a directory replacing one turns opaque. */
  readonly #whiteouts = new Set<string>();
  readonly result: UnpackResult = { entries: 0, skipped: [] };

  constructor(dest: string, options: UnpackOptions) {
    this.#tree = new SafeTree(dest, options.what);
    this.#options = options;
    this.#owners = options.owners ?? this.#root;
  }

  async entry(header: TarHeader, stream: EntryStream): Promise<void> {
    this.result.entries++;
    const parts = entryComponents(header.name, this.#options.what);
    const base = parts[parts.length - 1] ?? "";
    if (base.startsWith(WHITEOUT_PREFIX)) {
      stream.resume();
      return this.#whiteout(parts, header.name);
    }
    if (!parts.length && header.type !== "directory") {
      stream.resume();
      throw this.#error(header.name, `a ${header.type ?? "(unknown)"} cannot be the layer's root`);
    }
    if (parts.length) this.#tree.parents(parts, header.name);
    const path = this.#tree.path(parts);
    switch (header.type) {
      case "file":
      case "contiguous-file":
        return this.#file(path, header, stream);
      case "directory":
        stream.resume();
        return this.#directory(path, header);
    }
    stream.resume();
    switch (header.type) {
      case "symlink":
        this.#tree.clear(path, false);
        symlinkSync(header.linkname ?? "", path);
        return this.#metadata(path, header, false);
      case "link":
        return this.#hardlink(path, header);
      case "character-device":
      case "block-device":
      case "fifo":
        return this.#special(path, header);
      default:
        throw this.#error(header.name, `unsupported entry type ${header.type ?? "(unknown)"}`);
    }
  }

  /** Set modes and times of directories, deepest first. */
  finish(): void {
    for (const d of this.#dirs.reverse()) {
      // A later entry may have replaced the directory (by a symlink, say).
      if (!lstatOrUndefined(d.path)?.isDirectory()) continue;
      chmodSync(d.path, d.mode);
      if (d.mtime) lutimesSync(d.path, d.mtime, d.mtime);
    }
  }

  #error(name: string, why: string): DokrustError {
    return new DokrustError(`${this.#options.what}: entry ${JSON.stringify(name)}: ${why}`);
  }

  #whiteout(parts: string[], name: string): void {
    const base = parts[parts.length - 1]!;
    this.#tree.parents(parts, name);
    const dir = this.#tree.path(parts.slice(0, -1));
    if (base === OPAQUE) {
      lsetxattr(dir, OPAQUE_XATTR, new TextEncoder().encode("y"));
      return;
    }
    // Other .wh..wh. names are aufs bookkeeping (hard link directories).
    if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return;
    const hidden = base.slice(WHITEOUT_PREFIX.length);
    if (hidden === "" || hidden === "." || hidden === "..") throw this.#error(name, "whiteout of an invalid name");
    const path = `${dir}/${hidden}`;
    // A whiteout hides what the layers below have; what this layer itself
    // holds under the name stays (image-spec: whiteouts apply to lower layers).
    if (lstatOrUndefined(path)) return;
    mknod(path, S_IFCHR, 0n);
    this.#whiteouts.add(path);
  }

  async #file(path: string, header: TarHeader, stream: EntryStream): Promise<void> {
    this.#tree.clear(path, false);
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      for await (const chunk of stream) writeSync(fd, chunk);
      if (this.#owners) fchownSync(fd, ownerId(header, "uid"), ownerId(header, "gid"));
      fchmodSync(fd, header.mode & 0o7777);
      this.#xattrs(path, header);
      const mtime = entryTime(header);
      if (mtime) futimesSync(fd, mtime, mtime);
    } finally {
      closeSync(fd);
    }
  }

  #directory(path: string, header: TarHeader): void {
    const old = this.#tree.clear(path, true);
    if (!old?.isDirectory()) mkdirSync(path, { mode: 0o700 });
    this.#tree.addDir(path);
    if (this.#whiteouts.delete(path)) lsetxattr(path, OPAQUE_XATTR, new TextEncoder().encode("y"));
    if (this.#owners) lchownSync(path, ownerId(header, "uid"), ownerId(header, "gid"));
    this.#xattrs(path, header);
    this.#dirs.push({ path, mode: header.mode & 0o7777, mtime: entryTime(header) });
  }

  #hardlink(path: string, header: TarHeader): void {
    const name = header.name;
    const targetParts = entryComponents(header.linkname ?? "", this.#options.what);
    if (!targetParts.length) throw this.#error(name, "hard link to the layer's root");
    this.#tree.parents(targetParts, name, false);
    const target = this.#tree.path(targetParts);
    if (target === path) return;
    const st = lstatOrUndefined(target);
    if (!st) throw this.#error(name, `hard link target ${JSON.stringify(header.linkname)} is not in this layer`);
    if (st.isDirectory()) throw this.#error(name, `hard link target ${JSON.stringify(header.linkname)} is a directory`);
    this.#tree.clear(path, false);
    linkSync(target, path);
  }

  #special(path: string, header: TarHeader): void {
    const kind = header.type === "character-device" ? S_IFCHR : header.type === "block-device" ? S_IFBLK : S_IFIFO;
    if (kind !== S_IFIFO && !this.#root) {
      this.result.skipped.push(header.name);
      return;
    }
    this.#tree.clear(path, false);
    mknod(path, kind | (header.mode & 0o7777), kind === S_IFIFO ? 0n : makeDev(header.devmajor, header.devminor));
    this.#metadata(path, header, true);
  }

  #metadata(path: string, header: TarHeader, chmod: boolean): void {
    if (this.#owners) lchownSync(path, ownerId(header, "uid"), ownerId(header, "gid"));
    // chown clears set-id bits, so the mode comes after it.
    if (chmod) chmodSync(path, header.mode & 0o7777);
    this.#xattrs(path, header);
    const mtime = entryTime(header);
    if (mtime) lutimesSync(path, mtime, mtime);
  }

  #xattrs(path: string, header: TarHeader): void {
    for (const [name, value] of headerXattrs(header)) {
      // trusted.overlay.* would steer overlayfs (opaque, redirect,
      // metacopy): only whiteout conversion may set them.
      if (name.startsWith("trusted.overlay.")) continue;
      try {
        lsetxattr(path, name, value);
      } catch (err) {
        // Without privilege, trusted.* and security.* cannot be set.
        if (this.#root) throw err;
      }
    }
  }
}

function ownerId(header: TarHeader, key: "uid" | "gid"): number {
  const pax = header.pax?.[key];
  return pax !== undefined && /^\d+$/.test(pax) ? Number(pax) : header[key];
}

function entryTime(header: TarHeader): Date | undefined {
  const pax = header.pax?.mtime;
  if (pax !== undefined && /^-?\d+(\.\d+)?$/.test(pax)) return new Date(Number(pax) * 1000);
  return header.mtime;
}

/**
 * Unpack the (uncompressed) tar stream `source` into `dest`, an existing
 * empty directory.  Rejects with a one-line DokrustError on bad input;
 * `dest` is then left half-filled, for the caller to remove.
 */
export async function unpackLayer(source: Readable, dest: string, options: UnpackOptions): Promise<UnpackResult> {
  const unpacker = new Unpacker(dest, options);
  for await (const { header, stream } of tarEntries(source, options.what)) {
    if (header.type === "pax-global-header") {
      stream.resume();
      continue;
    }
    try {
      await unpacker.entry(header, stream);
    } catch (err) {
      stream.resume();
      if (err instanceof DokrustError) throw err;
      const e = err as NodeJS.ErrnoException;
      if (!e.syscall) throw tarError(err, options.what);
      throw new DokrustError(`${options.what}: entry ${JSON.stringify(header.name)}: ${e.syscall ?? "unpack"}: ${e.code ?? e.message}`, { cause: err });
    }
  }
  unpacker.finish();
  return unpacker.result;
}
