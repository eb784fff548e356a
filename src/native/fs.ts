/**
 * File-system calls node:fs lacks, through bun:ffi: mknod (device nodes,
 * fifos and overlayfs whiteouts) and the l*xattr family (extended
 * attributes, never following a symlink).  Loaded only by the image
 * store, which unpacks layers.
 */
import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { SysError } from "../errors.ts";

const lib = dlopen("libc.so.6", {
  mknod: { args: [FFIType.cstring, FFIType.u32, FFIType.u64], returns: FFIType.i32 },
  lsetxattr: { args: [FFIType.cstring, FFIType.cstring, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
  lgetxattr: { args: [FFIType.cstring, FFIType.cstring, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
  llistxattr: { args: [FFIType.cstring, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
  __errno_location: { args: [], returns: FFIType.ptr },
});
const sym = lib.symbols;

function errno(): number {
  const p = sym.__errno_location();
  return p === null ? 0 : read.i32(p, 0);
}

function cstr(text: string): Uint8Array {
  return new TextEncoder().encode(`${text}\0`);
}

const ERANGE = 34;
const ENODATA = 61;
const ENOTSUP = 95;

/** glibc's makedev(). */
export function makeDev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}

/** mknod(2): `mode` carries the file type (S_IFCHR, S_IFBLK, S_IFIFO). */
export function mknod(path: string, mode: number, dev: bigint): void {
  if (sym.mknod(ptr(cstr(path)), mode, dev) < 0) throw new SysError("mknod", path, errno());
}

/** lsetxattr(2): set an extended attribute on the path itself. */
export function lsetxattr(path: string, name: string, value: Uint8Array): void {
  const buf = value.length ? value : new Uint8Array(1);
  if (sym.lsetxattr(ptr(cstr(path)), ptr(cstr(name)), ptr(buf), value.length, 0) < 0) {
    throw new SysError("lsetxattr", `${name} on ${path}`, errno());
  }
}

/** lgetxattr(2); undefined when the attribute is not set. */
export function lgetxattr(path: string, name: string): Uint8Array | undefined {
  const p = cstr(path);
  const n = cstr(name);
  for (let size = 256; ; size *= 4) {
    const buf = new Uint8Array(size);
    const got = Number(sym.lgetxattr(ptr(p), ptr(n), ptr(buf), size));
    if (got >= 0) return buf.slice(0, got);
    const e = errno();
    if (e === ENODATA) return undefined;
    if (e !== ERANGE || size > 1 << 20) throw new SysError("lgetxattr", `${name} on ${path}`, e);
  }
}

/** llistxattr(2): the names of the path's extended attributes. */
export function llistxattr(path: string): string[] {
  const p = cstr(path);
  for (let size = 1024; ; size *= 4) {
    const buf = new Uint8Array(size);
    const got = Number(sym.llistxattr(ptr(p), ptr(buf), size));
    if (got >= 0) return new TextDecoder().decode(buf.subarray(0, got)).split("\0").filter(Boolean);
    const e = errno();
    if (e === ENOTSUP) return [];
    if (e !== ERANGE || size > 1 << 20) throw new SysError("llistxattr", path, e);
  }
}
