/**
 * The bpf(2) system call through bun:ffi, for the cgroup v2 device
 * program: load it (BPF_PROG_LOAD) and attach it to a cgroup directory
 * (BPF_PROG_ATTACH).  glibc has no bpf() wrapper, so this goes through
 * syscall(2).  union bpf_attr is laid out by hand (linux/bpf.h).
 */
import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { closeSync, constants, openSync } from "node:fs";
import { DokrustError, SysError } from "../errors.ts";

const SYS_BPF: Record<string, number> = { x64: 321, arm64: 280 };

const BPF_PROG_LOAD = 5;
const BPF_PROG_ATTACH = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE = 15;
const BPF_CGROUP_DEVICE = 6;
/** Several programs may sit on one cgroup; all must allow (as runc attaches). */
const BPF_F_ALLOW_MULTI = 2;
const LOG_SIZE = 64 * 1024;
const LICENSE = new TextEncoder().encode("MIT\0");
const PROG_NAME = new TextEncoder().encode("dokrust_devices");

let libc: ReturnType<typeof openLibc> | undefined;

function openLibc() {
  return dlopen("libc.so.6", {
    syscall: { args: [FFIType.i64, FFIType.i64, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols;
}

function sys() {
  return (libc ??= openLibc());
}

function bpf(cmd: number, attr: Uint8Array): { ret: number; errno: number } {
  const nr = SYS_BPF[process.arch];
  if (nr === undefined) throw new DokrustError(`bpf: no system call number known for ${process.arch}`);
  const ret = Number(sys().syscall(nr, cmd, ptr(attr), attr.length));
  if (ret >= 0) return { ret, errno: 0 };
  const p = sys().__errno_location();
  return { ret, errno: p === null ? 0 : read.i32(p, 0) };
}

/** union bpf_attr for BPF_PROG_LOAD, up to prog_name. */
function loadAttr(code: Uint8Array, log: Uint8Array | undefined): Uint8Array {
  const attr = new Uint8Array(128);
  const view = new DataView(attr.buffer);
  view.setUint32(0, BPF_PROG_TYPE_CGROUP_DEVICE, true);
  view.setUint32(4, code.length / 8, true);
  view.setBigUint64(8, BigInt(ptr(code)), true);
  view.setBigUint64(16, BigInt(ptr(LICENSE)), true);
  if (log) {
    view.setUint32(24, 1, true); // log_level
    view.setUint32(28, log.length, true);
    view.setBigUint64(32, BigInt(ptr(log)), true);
  }
  attr.set(PROG_NAME, 48);
  return attr;
}

/**
 * Load a BPF_PROG_TYPE_CGROUP_DEVICE program (encoded instructions) and
 * return its fd.  The first try runs without a verifier log, to keep the
 * start path short; a refusal is retried with one, and the log goes into
 * the error.
 */
export function loadDeviceProgram(code: Uint8Array): number {
  const first = bpf(BPF_PROG_LOAD, loadAttr(code, undefined));
  if (first.ret >= 0) return first.ret;
  const log = new Uint8Array(LOG_SIZE);
  const again = bpf(BPF_PROG_LOAD, loadAttr(code, log));
  if (again.ret >= 0) return again.ret;
  const text = new TextDecoder().decode(log.subarray(0, Math.max(0, log.indexOf(0)))).trim();
  const err = new SysError("bpf BPF_PROG_LOAD", "cgroup device program", again.errno);
  if (text) err.message += `\nverifier log:\n${text}`;
  throw err;
}

/** Attach a loaded device program to a cgroup v2 directory. */
export function attachDeviceProgram(progFd: number, cgroupDir: string): void {
  const dirFd = openSync(cgroupDir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    const attr = new Uint8Array(32);
    const view = new DataView(attr.buffer);
    view.setUint32(0, dirFd, true); // target_fd
    view.setUint32(4, progFd, true); // attach_bpf_fd
    view.setUint32(8, BPF_CGROUP_DEVICE, true);
    view.setUint32(12, BPF_F_ALLOW_MULTI, true);
    const { ret, errno } = bpf(BPF_PROG_ATTACH, attr);
    if (ret < 0) throw new SysError("bpf BPF_PROG_ATTACH", cgroupDir, errno);
  } finally {
    closeSync(dirFd);
  }
}

/** Load a device program and attach it to a cgroup; the cgroup keeps it alive. */
export function installDeviceProgram(code: Uint8Array, cgroupDir: string): void {
  const progFd = loadDeviceProgram(code);
  try {
    attachDeviceProgram(progFd, cgroupDir);
  } finally {
    sys().close(progFd);
  }
}
