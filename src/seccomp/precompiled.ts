/**
 * The default profile compiled ahead of time: a Bun macro, which
 * `bun build` (scripts/bundle.sh) runs while it builds dist/dokrust and
 * whose result it writes into the executable as a constant.  Compiling
 * the profile at every start costs 7-15 ms of a cold JavaScript engine;
 * the constant costs nothing.  (Run from the sources, Bun runs the macro
 * when it loads index.ts, so the result is never stale.)
 *
 * It covers the common case, docker's default capability set on the
 * machine that built dokrust; other sets are compiled when used.
 */
import { DEFAULT_CAPABILITIES } from "../plan/linux.ts";
import { nativeArch } from "./arch.ts";
import { compileSeccomp } from "./compile.ts";
import { capabilityKey, defaultProfile } from "./default.ts";
import type { Seccomp } from "../spec/types.ts";

/** A compiled default profile, in a form a macro can return (JSON). */
export interface PrecompiledDefault {
  /** SCMP_ARCH_* it was built for. */
  native: string;
  /** capabilityKey() of the capability set it was built for. */
  key: string;
  profile: Seccomp;
  /** The program, base64. */
  program: string;
  flags: number;
}

/** Compile the default profile for docker's default capabilities. */
export function precompileDefault(): PrecompiledDefault {
  const native = nativeArch();
  const profile = defaultProfile(DEFAULT_CAPABILITIES, native);
  const { program, flags } = compileSeccomp(profile, { native });
  return { native, key: capabilityKey(DEFAULT_CAPABILITIES), profile, program: Buffer.from(program).toString("base64"), flags };
}
