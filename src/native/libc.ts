/**
 * The few libc calls Bun has no API for, through bun:ffi: a socket pair,
 * receiving a file descriptor over a unix socket (SCM_RIGHTS), sending
 * one, and terminal window sizes.  Loaded only by the commands that use a
 * terminal or a console socket.
 */
import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { SysError } from "../errors.ts";

const lib = dlopen("libc.so.6", {
  socketpair: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  recvmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i64 },
  sendmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i64 },
  ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  mkfifo: { args: [FFIType.cstring, FFIType.u32], returns: FFIType.i32 },
  flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
});
const sym = lib.symbols;

function errno(): number {
  const p = sym.__errno_location();
  return p === null ? 0 : read.i32(p, 0);
}

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_CMSG_CLOEXEC = 0x40000000;
const TIOCGWINSZ = 0x5413;
const TIOCSWINSZ = 0x5414;

/** A connected pair of unix stream sockets, both close-on-exec. */
export function socketPair(): [number, number] {
  const fds = new Int32Array(2);
  if (sym.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ptr(fds)) < 0) {
    throw new SysError("socketpair", "", errno());
  }
  return [fds[0]!, fds[1]!];
}

/** Connect to a unix socket by path (a console socket). */
export function connectUnix(path: string): number {
  const fd = sym.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new SysError("socket", "", errno());
  const addr = new Uint8Array(110);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  const bytes = new TextEncoder().encode(path);
  if (bytes.length >= 108) throw new SysError("connect", path, 36 /* ENAMETOOLONG */);
  addr.set(bytes, 2);
  if (sym.connect(fd, ptr(addr), 2 + bytes.length + 1) < 0) {
    const e = errno();
    sym.close(fd);
    throw new SysError("connect", path, e);
  }
  return fd;
}

function messageHeader(data: Uint8Array, control: Uint8Array): { msg: Uint8Array; keep: unknown[] } {
  const iov = new BigUint64Array([BigInt(ptr(data)), BigInt(data.length)]);
  const msg = new Uint8Array(56);
  const view = new DataView(msg.buffer);
  view.setBigUint64(16, BigInt(ptr(iov)), true);
  view.setBigUint64(24, 1n, true);
  view.setBigUint64(32, BigInt(ptr(control)), true);
  view.setBigUint64(40, BigInt(control.length), true);
  return { msg, keep: [iov, data, control] };
}

/** Receive one file descriptor sent with SCM_RIGHTS (blocking). */
export function receiveFd(socket: number): number {
  const data = new Uint8Array(1);
  const control = new Uint8Array(24);
  const { msg, keep } = messageHeader(data, control);
  const n = Number(sym.recvmsg(socket, ptr(msg), MSG_CMSG_CLOEXEC));
  void keep;
  if (n < 0) throw new SysError("recvmsg", "", errno());
  const view = new DataView(control.buffer);
  if (Number(n) === 0 || view.getInt32(8, true) !== SOL_SOCKET || view.getInt32(12, true) !== SCM_RIGHTS) {
    throw new SysError("recvmsg", "(no file descriptor came)", 71 /* EPROTO */);
  }
  return view.getInt32(16, true);
}

/** Send one file descriptor with SCM_RIGHTS. */
export function sendFd(socket: number, fd: number): void {
  const data = new Uint8Array([0]);
  const control = new Uint8Array(24);
  const view = new DataView(control.buffer);
  view.setBigUint64(0, 20n, true);
  view.setInt32(8, SOL_SOCKET, true);
  view.setInt32(12, SCM_RIGHTS, true);
  view.setInt32(16, fd, true);
  const { msg, keep } = messageHeader(data, control);
  const n = sym.sendmsg(socket, ptr(msg), 0);
  void keep;
  if (n < 0) throw new SysError("sendmsg", "", errno());
}

export interface WindowSize {
  rows: number;
  cols: number;
}

/** The window size of a terminal, or undefined when fd is not one. */
export function getWindowSize(fd: number): WindowSize | undefined {
  const ws = new Uint16Array(4);
  if (sym.ioctl(fd, TIOCGWINSZ, ptr(ws)) < 0) return undefined;
  return { rows: ws[0]!, cols: ws[1]! };
}

export function setWindowSize(fd: number, size: WindowSize): void {
  const ws = new Uint16Array([size.rows, size.cols, 0, 0]);
  sym.ioctl(fd, TIOCSWINSZ, ptr(ws));
}

export function closeFd(fd: number): void {
  sym.close(fd);
}

/** Create a fifo (node:fs has no mkfifo). */
export function makeFifo(path: string, mode: number): void {
  const bytes = new TextEncoder().encode(`${path}\0`);
  if (sym.mkfifo(ptr(bytes), mode) < 0) throw new SysError("mkfifo", path, errno());
}

const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;

/**
 * Take an exclusive flock on fd without blocking the event loop's
 * thread: true when taken, false when another process holds it.
 */
export function tryLock(fd: number): boolean {
  if (sym.flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
  const e = errno();
  if (e === EWOULDBLOCK) return false;
  throw new SysError("flock", `fd ${fd}`, e);
}
