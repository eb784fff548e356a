/**
 * Architectures a seccomp filter can cover, and system call name → number
 * resolution for each (the tables in syscalls.ts).
 *
 * A filter sees `seccomp_data.arch`, an AUDIT_ARCH_* value, and the call
 * number of that ABI.  On x86_64 one AUDIT_ARCH covers two ABIs: x86_64
 * and x32, whose call numbers carry the x32 bit (0x40000000).  i386
 * binaries on an x86_64 kernel report AUDIT_ARCH_I386.
 */
import { UsageError } from "../errors.ts";
import { SYSCALL_RUNS } from "./syscalls.ts";

/** The x32 ABI's call numbers have this bit set (__X32_SYSCALL_BIT). */
export const X32_BIT = 0x40000000;

/** AUDIT_ARCH_* values (linux/audit.h: EM_* | 64BIT | LE). */
export const AUDIT_ARCH = {
  X86_64: 0xc000003e,
  I386: 0x40000003,
  AARCH64: 0xc00000b7,
  ARM: 0x40000028,
} as const;

/** An ABI dokrust has a system call table for. */
export interface Arch {
  /** The runtime-spec / libseccomp name, SCMP_ARCH_*. */
  name: string;
  /** seccomp_data.arch for this ABI. */
  audit: number;
  /** Argument width: a 32-bit ABI's arguments are compared on their low half only. */
  bits: 32 | 64;
  /** Added to every number of the table (the x32 bit). */
  offset: number;
  /** The key of its table in SYSCALL_RUNS. */
  table: string;
}

function arch(name: string, audit: number, bits: 32 | 64, offset: number, table: string): Arch {
  return { name, audit, bits, offset, table };
}

export const ARCHES: Readonly<Record<string, Arch>> = {
  SCMP_ARCH_X86_64: arch("SCMP_ARCH_X86_64", AUDIT_ARCH.X86_64, 64, 0, "x86_64"),
  SCMP_ARCH_X32: arch("SCMP_ARCH_X32", AUDIT_ARCH.X86_64, 32, X32_BIT, "x32"),
  SCMP_ARCH_X86: arch("SCMP_ARCH_X86", AUDIT_ARCH.I386, 32, 0, "x86"),
  SCMP_ARCH_AARCH64: arch("SCMP_ARCH_AARCH64", AUDIT_ARCH.AARCH64, 64, 0, "aarch64"),
};

/**
 * Architectures libseccomp knows but dokrust has no table for.  A profile
 * may list them (profiles are often written for several machines); they
 * are left out of the filter with a warning.  Their calls can only come
 * from binaries this kernel cannot run, except 32-bit ARM ones on an
 * arm64 kernel built with COMPAT, which then meet the bad-arch action.
 */
const WITHOUT_TABLE = new Set([
  "SCMP_ARCH_ARM",
  "SCMP_ARCH_MIPS",
  "SCMP_ARCH_MIPS64",
  "SCMP_ARCH_MIPS64N32",
  "SCMP_ARCH_MIPSEL",
  "SCMP_ARCH_MIPSEL64",
  "SCMP_ARCH_MIPSEL64N32",
  "SCMP_ARCH_PPC",
  "SCMP_ARCH_PPC64",
  "SCMP_ARCH_PPC64LE",
  "SCMP_ARCH_S390",
  "SCMP_ARCH_S390X",
  "SCMP_ARCH_PARISC",
  "SCMP_ARCH_PARISC64",
  "SCMP_ARCH_RISCV64",
  "SCMP_ARCH_LOONGARCH64",
  "SCMP_ARCH_M68K",
  "SCMP_ARCH_SH",
  "SCMP_ARCH_SHEB",
]);

/**
 * Names only other architectures have (docker's and podman's profiles list
 * them for every machine); not finding them is not worth a warning.
 */
export const FOREIGN_SYSCALLS = new Set([
  // arm
  "arm_fadvise64_64", "arm_sync_file_range", "breakpoint", "cacheflush", "set_tls", "get_tls",
  "usr26", "usr32",
  // powerpc, alpha, sparc, parisc, mips
  "multiplexer", "pciconfig_iobase", "pciconfig_read", "pciconfig_write", "recv", "rtas", "send",
  "spu_create",
  "spu_run", "subpage_prot", "swapcontext", "switch_endian", "sync_file_range2",
  "sys_debug_setcontext",
  "syscall", "timerfd", "cachectl", "sysmips", "kern_features", "perfctr", "utrap_install",
  // riscv, s390
  "riscv_flush_icache", "riscv_hwprobe", "s390_guarded_storage", "s390_pci_mmio_read",
  "s390_pci_mmio_write",
  "s390_runtime_instr", "s390_sthyi",
]);

/** The SCMP_ARCH_* name of the machine dokrust runs on. */
export function nativeArch(): string {
  if (process.arch === "x64") return "SCMP_ARCH_X86_64";
  if (process.arch === "arm64") return "SCMP_ARCH_AARCH64";
  throw new UsageError(`seccomp: dokrust has no system call table for ${process.arch}`);
}

/** The ABIs that run natively beside `native` (docker's archMap). */
export function companionArches(native: string): string[] {
  if (native !== "SCMP_ARCH_X86_64") return [native];
  return ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];
}

/** Look an architecture up: an Arch, "no table" (warn and skip), or an error. */
export function archByName(name: string): Arch | "no table" {
  const arch = ARCHES[name];
  if (arch) return arch;
  if (WITHOUT_TABLE.has(name)) return "no table";
  throw new UsageError(`seccomp: unknown architecture ${JSON.stringify(name)}`);
}

const tables = new Map<string, Map<string, number>>();

/** name → call number (x32 bit included) for an ABI; built on first use. */
export function syscallTable(arch: Arch): ReadonlyMap<string, number> {
  let table = tables.get(arch.table);
  if (!table) {
    table = new Map();
    for (const [first, names] of SYSCALL_RUNS[arch.table] ?? []) {
      names.split(" ").forEach((name, i) => table!.set(name, first + i + arch.offset));
    }
    tables.set(arch.table, table);
  }
  return table;
}
