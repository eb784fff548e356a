/**
 * The seccomp layer's entry points for the rest of dokrust: a spec's
 * `linux.seccomp` → the program the plan loads (DK_OP_SECCOMP), the
 * profile the dokrust command line puts in the spec, and the
 * --security-opt values that choose it.
 */
import { UsageError } from "../errors.ts";
import type { Seccomp, Spec } from "../spec/types.ts";
import { ARCHES, nativeArch } from "./arch.ts";
import { ACTIONS, FILTER_FLAGS, OPERATORS, compileSeccomp } from "./compile.ts";
import type { CompiledSeccomp, SeccompProfile } from "./compile.ts";
import { capabilityKey, defaultProfile } from "./default.ts";
import { precompileDefault } from "./default.ts" with { type: "macro" };
import { readProfileFile, resolveProfile, type ProfileFile } from "./profile.ts";

export type { CompiledSeccomp } from "./compile.ts";

/** `--security-opt seccomp=...`: the default profile, none, or a file's. */
export type SeccompChoice =
  | { kind: "default" }
  | { kind: "unconfined" }
  | { kind: "file"; path: string; file: ProfileFile };

/** The dokrust command line's --security-opt values. */
export interface SecurityOptions {
  seccomp: SeccompChoice;
  noNewPrivileges: boolean;
}

/**
 * The default profile for docker's capability set, compiled ahead of
 * time: precompileDefault() is a Bun macro, which `bun build` runs while
 * it builds dist/dokrust and whose result it writes into the executable
 * as a constant.  Compiling the profile at each start costs ~5-10 ms of a
 * cold engine; the constant costs nothing.  (Run from the sources, Bun
 * runs the macro as it loads this file, so the result is never stale.)
 */
const PRECOMPILED = precompileDefault();

/** Profiles whose program is known already: the precompiled default one (frozen: never stale). */
const precompiled = new WeakMap<Seccomp, CompiledSeccomp>();

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

/**
 * The linux.seccomp a dokrust run gets: the default profile for its
 * capabilities (bounding set), none, or the file's resolved for them.
 */
export function profileForRun(
  choice: SeccompChoice,
  capabilities: readonly string[],
): Seccomp | undefined {
  if (choice.kind === "unconfined") return undefined;
  if (choice.kind === "default") return defaultForRun(capabilities);
  return toSpec(resolveProfile(choice.file, { capabilities }));
}

function defaultForRun(capabilities: readonly string[]): Seccomp {
  const key = capabilityKey(capabilities);
  if (PRECOMPILED.native !== nativeArch() || PRECOMPILED.key !== key) {
    return defaultProfile(capabilities);
  }
  const profile = PRECOMPILED.profile;
  if (!precompiled.has(profile)) {
    freezeProfile(profile);
    const program = Uint8Array.fromBase64(PRECOMPILED.program);
    precompiled.set(profile, { program, flags: PRECOMPILED.flags, warnings: [] });
  }
  return profile;
}

/** Freeze a profile's objects and lists (not each of its ~370 names: that costs a millisecond). */
function freezeProfile(profile: Seccomp): void {
  for (const rule of profile.syscalls ?? []) {
    for (const arg of rule.args ?? []) Object.freeze(arg);
    Object.freeze(rule.args);
    Object.freeze(rule.names);
    Object.freeze(rule);
  }
  Object.freeze(profile.syscalls);
  Object.freeze(profile.architectures);
  Object.freeze(profile);
}

/**
 * A profile as spec.types' Seccomp.  Argument values beyond 2^53 do not
 * fit a JSON number: they stay exact as decimal strings, which the
 * compiler reads back (and JSON.stringify can write, unlike a bigint).
 */
function toSpec(profile: SeccompProfile): Seccomp {
  const exact = (v: unknown) => {
    if (typeof v !== "bigint") return v;
    return Number.isSafeInteger(Number(v)) ? Number(v) : String(v);
  };
  const syscalls = profile.syscalls?.map((rule) => {
    if (!rule.args) return rule;
    const args = rule.args.map(({ valueTwo, ...a }) => ({
      ...a,
      value: exact(a.value),
      ...(valueTwo === undefined ? {} : { valueTwo: exact(valueTwo) }),
    }));
    return { ...rule, args };
  });
  return { ...profile, ...(syscalls ? { syscalls } : {}) } as Seccomp;
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
        throw securityOptError(text, "no-new-privileges takes true or false");
      }
      out.noNewPrivileges = value !== "false";
    } else if (key === "seccomp") {
      if (!value) throw securityOptError(text, "expected seccomp=unconfined or seccomp=FILE");
      out.seccomp =
        value === "unconfined"
          ? { kind: "unconfined" }
          : { kind: "file", path: value, file: readProfileFile(value) };
    } else if (key === "apparmor" || key === "label" || key === "systempaths") {
      throw securityOptError(text, `${key} is not supported by dokrust`);
    } else {
      throw securityOptError(text, "expected seccomp=unconfined|FILE or no-new-privileges");
    }
  }
  return out;
}

function securityOptError(text: string, why: string): UsageError {
  return new UsageError(`--security-opt ${text}: ${why}`);
}

/** The seccomp part of the runtime-spec features document (`dokrust features`). */
export function seccompFeatures(): Record<string, unknown> {
  return {
    enabled: true,
    actions: Object.keys(ACTIONS),
    operators: [...OPERATORS],
    archs: Object.keys(ARCHES),
    knownFlags: Object.keys(FILTER_FLAGS),
    supportedFlags: Object.keys(FILTER_FLAGS),
  };
}
