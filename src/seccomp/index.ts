/**
 * The seccomp layer's entry points for the rest of dokrust: a spec's
 * `linux.seccomp` → the program the plan loads (DK_OP_SECCOMP), and the
 * profile the dokrust command line puts in the spec.
 */
import { UsageError } from "../errors.ts";
import type { Seccomp, Spec } from "../spec/types.ts";
import { ARCHES, nativeArch } from "./arch.ts";
import { ACTIONS, FILTER_FLAGS, compileSeccomp, type CompiledSeccomp, type SeccompProfile } from "./compile.ts";
import { capabilityKey, defaultProfile } from "./default.ts";
import { precompileDefault } from "./precompiled.ts" with { type: "macro" };
import { readProfileFile, resolveProfile, type ProfileFile } from "./profile.ts";

export type { CompiledSeccomp } from "./compile.ts";

/**
 * Compile the spec's seccomp profile; undefined when it has none.  Throws
 * UsageError when the profile cannot be honoured; `warnings` lists what
 * was skipped (unknown system calls, architectures without a table).
 */
export function seccompForSpec(spec: Spec): CompiledSeccomp | undefined {
  const profile = spec.linux?.seccomp;
  if (!profile) return undefined;
  return precompiled.get(profile) ?? compileSeccomp(profile as SeccompProfile);
}

/** The default profile for docker's capability set, compiled when dokrust was built. */
const PRECOMPILED = precompileDefault();

/**
 * Profiles whose program is known already: the precompiled default one.
 * The profile object is frozen, so the program cannot go stale.
 */
const precompiled = new WeakMap<Seccomp, CompiledSeccomp>();

function defaultForRun(capabilities: readonly string[]): Seccomp {
  if (PRECOMPILED.native !== nativeArch() || PRECOMPILED.key !== capabilityKey(capabilities)) return defaultProfile(capabilities);
  const profile = PRECOMPILED.profile;
  if (!precompiled.has(profile)) {
    freezeProfile(profile);
    const program = Uint8Array.fromBase64(PRECOMPILED.program);
    precompiled.set(profile, { program, flags: PRECOMPILED.flags, warnings: [] });
  }
  return profile;
}

/** Freeze a profile's objects and lists (not element by element: the name lists are long). */
function freezeProfile(profile: Seccomp): void {
  for (const rule of profile.syscalls ?? []) {
    for (const arg of rule.args ?? []) Object.freeze(arg);
    Object.freeze(rule.args);
    Object.freeze(rule.names);
    Object.freeze(rule);
  }
  Object.freeze(profile.syscalls);
  Object.freeze(profile.architectures);
  Object.freeze(profile.flags);
  Object.freeze(profile);
}

/**
 * Parse --security-opt values as docker takes them: `seccomp=unconfined`,
 * `seccomp=FILE`, `no-new-privileges[=true|false]` (":" works in place of
 * "=", as docker's older spelling).  A profile file is read here, so that
 * a bad one is refused before anything is created.
 */
export function parseSecurityOpts(values: readonly string[]): SecurityOptions {
  const out: SecurityOptions = { seccomp: { kind: "default" }, noNewPrivileges: false };
  for (const text of values) {
    const at = text.search(/[=:]/);
    const [key, value] = at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
    if (key === "no-new-privileges") {
      if (value !== undefined && value !== "true" && value !== "false") {
        throw new SecurityOptError(text, "no-new-privileges takes true or false");
      }
      out.noNewPrivileges = value !== "false";
    } else if (key === "seccomp") {
      if (!value) throw new SecurityOptError(text, "expected seccomp=unconfined or seccomp=FILE");
      out.seccomp = value === "unconfined" ? { kind: "unconfined" } : { kind: "file", path: value, file: readProfileFile(value) };
    } else if (key === "apparmor" || key === "label" || key === "systempaths") {
      throw new SecurityOptError(text, `${key} is not supported by dokrust`);
    } else {
      throw new SecurityOptError(text, "expected seccomp=unconfined|FILE or no-new-privileges");
    }
  }
  return out;
}

class SecurityOptError extends UsageError {
  constructor(text: string, why: string) {
    super(`--security-opt ${text}: ${why}`);
  }
}

/**
 * The linux.seccomp a dokrust run gets: the default profile for its
 * capabilities (bounding set), none, or the file's resolved for them.
 */
export function profileForRun(choice: SeccompChoice, capabilities: readonly string[]): Seccomp | undefined {
  if (choice.kind === "unconfined") return undefined;
  if (choice.kind === "default") return defaultForRun(capabilities);
  return toSpec(resolveProfile(choice.file, { capabilities }));
}

/**
 * A profile as spec.types' Seccomp.  Argument values beyond 2^53 do not
 * fit a JSON number: they stay exact as decimal strings, which the
 * compiler reads back (and JSON.stringify can write, unlike a bigint).
 */
function toSpec(profile: SeccompProfile): Seccomp {
  const exact = (v: unknown) => (typeof v === "bigint" ? (Number.isSafeInteger(Number(v)) ? Number(v) : String(v)) : v);
  const syscalls = profile.syscalls?.map((rule) => {
    if (!rule.args) return rule;
    const args = rule.args.map((a) => ({ ...a, value: exact(a.value), ...(a.valueTwo === undefined ? {} : { valueTwo: exact(a.valueTwo) }) }));
    return { ...rule, args };
  });
  return { ...profile, ...(syscalls ? { syscalls } : {}) } as Seccomp;
}

/** The seccomp part of the runtime-spec features document (`dokrust features`). */
export function seccompFeatures(): Record<string, unknown> {
  return {
    enabled: true,
    actions: Object.keys(ACTIONS),
    operators: ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"],
    archs: Object.keys(ARCHES),
    knownFlags: Object.keys(FILTER_FLAGS),
    supportedFlags: Object.keys(FILTER_FLAGS),
  };
}
