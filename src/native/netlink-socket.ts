/**
 * Netlink sockets and network namespaces through bun:ffi: the system
 * calls src/net/ needs and Bun has no API for (socket, setsockopt, bind,
 * send, recv on AF_NETLINK; unshare and setns of a network namespace).
 *
 * Network namespaces and threads: a network namespace belongs to a
 * thread, not to a process, so the one thread that runs JavaScript (FFI
 * calls run on it) may leave the host's namespace and come back without
 * disturbing Bun's other threads, and unshare(CLONE_NEWNET) /
 * setns(CLONE_NEWNET) are allowed in a multithreaded process (unlike
 * CLONE_NEWUSER or CLONE_NEWNS).  A socket stays in the namespace it was
 * created in, so `inNetns()` creates a socket there and returns at once;
 * no JavaScript can run on that thread in between because every call in
 * it is synchronous.
 */
import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { SysError } from "../errors.ts";

const lib = dlopen("libc.so.6", {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  send: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  open: { args: [FFIType.cstring, FFIType.i32, FFIType.u32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  setns: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  unshare: { args: [FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
});
const sym = lib.symbols;

function errno(): number {
  const p = sym.__errno_location();
  return p === null ? 0 : read.i32(p, 0);
}

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const CLONE_NEWNET = 0x40000000;
const EINTR = 4;

/** Protocol numbers of netlink families. */
export const NETLINK_ROUTE = 0;

function setIntOption(fd: number, level: number, name: number, value: number): void {
  const v = new Int32Array([value]);
  if (sym.setsockopt(fd, level, name, ptr(v), 4) < 0) throw new SysError("setsockopt", `netlink option ${name}`, errno());
}

/**
 * A netlink socket of `protocol`, bound, asking for extended acks (the
 * kernel's error text) with capped error messages (the request is not
 * echoed back), with a receive timeout so a lost answer cannot hang.
 */
export function openNetlink(protocol: number, timeoutMs = 10_000): number {
  const fd = sym.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) throw new SysError("socket", "AF_NETLINK", errno());
  try {
    setIntOption(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
    setIntOption(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
    const tv = new BigInt64Array([BigInt(Math.floor(timeoutMs / 1000)), BigInt((timeoutMs % 1000) * 1000)]);
    if (sym.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, ptr(tv), 16) < 0) throw new SysError("setsockopt", "SO_RCVTIMEO", errno());
    const addr = new Uint8Array(12);
    new DataView(addr.buffer).setUint16(0, AF_NETLINK, true);
    if (sym.bind(fd, ptr(addr), 12) < 0) throw new SysError("bind", "AF_NETLINK", errno());
  } catch (err) {
    sym.close(fd);
    throw err;
  }
  return fd;
}

/** Send one datagram to the kernel. */
export function netlinkSend(fd: number, bytes: Uint8Array): void {
  for (;;) {
    const n = Number(sym.send(fd, ptr(bytes), bytes.length, 0));
    if (n >= 0) return;
    const e = errno();
    if (e !== EINTR) throw new SysError("send", "netlink", e);
  }
}

/** Receive one datagram into `buffer`; returns its length. */
export function netlinkRecv(fd: number, buffer: Uint8Array): number {
  for (;;) {
    const n = Number(sym.recv(fd, ptr(buffer), buffer.length, 0));
    if (n >= 0) return n;
    const e = errno();
    if (e !== EINTR) throw new SysError("recv", "netlink", e);
  }
}

export function closeFd(fd: number): void {
  sym.close(fd);
}

/** Open a file read-only, close-on-exec (namespace files). */
export function openReadOnly(path: string): number {
  const bytes = new TextEncoder().encode(`${path}\0`);
  const fd = sym.open(ptr(bytes), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) throw new SysError("open", path, errno());
  return fd;
}

/** The calling thread's network namespace, as an open fd. */
function currentNetns(): number {
  return openReadOnly("/proc/thread-self/ns/net");
}

function enter(fd: number, what: string): void {
  if (sym.setns(fd, CLONE_NEWNET) < 0) throw new SysError("setns", what, errno());
}

/**
 * Run `fn` (synchronous) with the calling thread in the network namespace
 * `nsFd`, then put the thread back where it was.  Failing to come back
 * is fatal: the thread would go on in the wrong namespace.
 */
export function inNetns<T>(nsFd: number, fn: () => T): T {
  const home = currentNetns();
  try {
    enter(nsFd, "into the container's network namespace");
    try {
      return fn();
    } finally {
      comeBack(home);
    }
  } finally {
    sym.close(home);
  }
}

function comeBack(home: number): void {
  if (sym.setns(home, CLONE_NEWNET) < 0) {
    process.stderr.write(`dokrust: setns back into the host's network namespace: errno ${errno()}: aborting\n`);
    process.abort();
  }
}

/**
 * A new, empty network namespace, as an open fd (close-on-exec).  The
 * namespace lives while the fd, or a process in it, does; nothing is
 * mounted for it, so nothing outlives dokrust and its container.
 */
export function newNetns(): number {
  const home = currentNetns();
  try {
    if (sym.unshare(CLONE_NEWNET) < 0) throw new SysError("unshare", "a network namespace", errno());
    try {
      return currentNetns();
    } finally {
      comeBack(home);
    }
  } finally {
    sym.close(home);
  }
}
