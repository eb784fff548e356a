/**
 * Profile files, as `--security-opt seccomp=FILE` takes them: either the
 * runtime-spec's `linux.seccomp` object or docker's profile format, which
 * adds to it what docker resolves before it writes config.json:
 *
 *   - `archMap`: [{architecture, subArchitectures}], the architectures to
 *     use on each kind of machine (instead of `architectures`);
 *   - per rule `includes` / `excludes`: {caps, arches, minKernel}: a rule
 *     applies when the container holds every capability of includes.caps
 *     (its bounding set), none of excludes.caps, runs on an architecture
 *     includes.arches lists (excludes.arches does not), on a kernel at
 *     least includes.minKernel (below excludes.minKernel);
 *   - `name` for a rule of one call, `comment` fields (ignored).
 *
 * Files are parsed keeping integers exact: argument values are 64-bit,
 * and a JavaScript number holds only 53 bits.
 */
import { readFileSync } from "node:fs";
import { release } from "node:os";
import { UsageError } from "../errors.ts";
import { nativeArch } from "./arch.ts";
import type { SeccompArg, SeccompProfile, SeccompRule } from "./compile.ts";

/** A rule as a profile file may hold it. */
export interface FileRule extends Partial<SeccompRule> {
  name?: string;
  comment?: string;
  includes?: RuleFilter;
  excludes?: RuleFilter;
}

export interface RuleFilter {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}

/** A profile file: linux.seccomp, or docker's format. */
export interface ProfileFile extends Omit<SeccompProfile, "syscalls"> {
  archMap?: Array<{ architecture: string; subArchitectures?: string[] }>;
  syscalls?: FileRule[];
}

/** Where the profile is used: the container's capabilities and the machine. */
export interface ProfileContext {
  capabilities: readonly string[];
  /** SCMP_ARCH_* of the machine (default: the one dokrust runs on). */
  native?: string;
  /** The kernel release, as uname -r prints it (default: this one). */
  kernel?: string;
}

/**
 * JSON.parse, except that integers too large for a number stay exact (as
 * bigint): Bun gives a reviver the source text of each number.
 */
export function parseJsonExact(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) => {
    const source = context?.source;
    if (typeof value !== "number" || Number.isSafeInteger(value)) return value;
    return source && /^\d+$/.test(source) ? BigInt(source) : value;
  });
}

/** Read and check a profile file; errors name the file. */
export function readProfileFile(path: string): ProfileFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new UsageError(`read seccomp profile ${path}: ${code}`);
  }
  let data: unknown;
  try {
    data = parseJsonExact(text);
  } catch (err) {
    throw new UsageError(`seccomp profile ${path}: not JSON: ${(err as Error).message}`);
  }
  const problem = profileProblem(data);
  if (problem) throw new UsageError(`seccomp profile ${path}: ${problem}`);
  return data as ProfileFile;
}

/** What is wrong with the shape of a profile file, if anything. */
function profileProblem(data: unknown): string | undefined {
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    return "expected a JSON object";
  }
  const p = data as Record<string, unknown>;
  if (typeof p.defaultAction !== "string") return "defaultAction is missing";
  if (p.syscalls !== undefined && !Array.isArray(p.syscalls)) return "syscalls must be a list";
  for (const [i, rule] of ((p.syscalls as unknown[]) ?? []).entries()) {
    if (typeof rule !== "object" || rule === null) return `syscalls[${i}] must be an object`;
    const r = rule as Record<string, unknown>;
    if (typeof r.action !== "string") return `syscalls[${i}].action is missing`;
    const names = r.names;
    if (names === undefined && typeof r.name !== "string") return `syscalls[${i}] names no call`;
    const strings = Array.isArray(names) && names.every((n) => typeof n === "string");
    if (names !== undefined && !strings) {
      return `syscalls[${i}].names must be a list of names`;
    }
    if (r.args != null && !Array.isArray(r.args)) return `syscalls[${i}].args must be a list`;
  }
  return undefined;
}

/** Resolve a profile file for one container: the plain linux.seccomp object. */
export function resolveProfile(file: ProfileFile, context: ProfileContext): SeccompProfile {
  const native = context.native ?? nativeArch();
  const kernel = context.kernel ?? release();
  const caps = new Set(context.capabilities);
  const { archMap, syscalls, ...rest } = file;
  const profile: SeccompProfile = { ...rest };
  const mapped = archMap?.find((m) => m.architecture === native);
  if (mapped) profile.architectures = [mapped.architecture, ...(mapped.subArchitectures ?? [])];
  profile.syscalls = [];
  for (const rule of syscalls ?? []) {
    if (!applies(rule, caps, native, kernel)) continue;
    const names = rule.names ?? (rule.name ? [rule.name] : []);
    const out: SeccompRule = { names, action: rule.action! };
    if (rule.errnoRet !== undefined) out.errnoRet = rule.errnoRet;
    if (rule.args) out.args = rule.args.map((a: SeccompArg) => ({ ...a }));
    profile.syscalls.push(out);
  }
  return profile;
}

function applies(rule: FileRule, caps: ReadonlySet<string>, arch: string, kernel: string): boolean {
  const inc = rule.includes ?? {};
  const exc = rule.excludes ?? {};
  if (inc.caps && !inc.caps.every((c) => caps.has(c))) return false;
  if (exc.caps && exc.caps.some((c) => caps.has(c))) return false;
  if (inc.arches && !inc.arches.some((a) => archMatches(a, arch))) return false;
  if (exc.arches && exc.arches.some((a) => archMatches(a, arch))) return false;
  if (inc.minKernel && compareKernel(kernel, inc.minKernel) < 0) return false;
  if (exc.minKernel && compareKernel(kernel, exc.minKernel) >= 0) return false;
  return true;
}

/** docker's rule filters name machines the Go way (amd64, arm64, ...) or as SCMP_ARCH_*. */
const GO_ARCHES: Readonly<Record<string, string>> = {
  amd64: "SCMP_ARCH_X86_64",
  x86_64: "SCMP_ARCH_X86_64",
  arm64: "SCMP_ARCH_AARCH64",
  aarch64: "SCMP_ARCH_AARCH64",
  "386": "SCMP_ARCH_X86",
  x32: "SCMP_ARCH_X32",
};

function archMatches(name: string, arch: string): boolean {
  return name === arch || GO_ARCHES[name] === arch;
}

/** Compare kernel releases ("6.1", "5.15.0-91-generic") by their numeric parts. */
export function compareKernel(a: string, b: string): number {
  const parts = (v: string) => {
    const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(v) ?? [];
    return [m[1], m[2], m[3]].map((n) => Number(n ?? 0));
  };
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < 3; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
