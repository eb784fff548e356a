/**
 * What an image's config supplies to a run when the command line does
 * not: the command (Entrypoint + Cmd, as docker run combines them), the
 * environment, the working directory and the user, resolved against the
 * image's own /etc/passwd and /etc/group.  Pure: the files are passed in.
 */
import { DokrustError } from "../errors.ts";
import type { RunConfig } from "./oci.ts";

/** What the command line gave, before the image's defaults. */
export interface GivenRun {
  /** The command's arguments; empty when none was given. */
  args: string[];
  /** The command came from -c (run through /bin/sh -c, never after an entrypoint). */
  shell: boolean;
  env: string[];
  workdir?: string;
  user?: { uid: number; gid: number };
}

export interface ResolvedRun {
  args: string[];
  env: string[];
  workdir?: string;
  user?: { uid: number; gid: number };
}

/** The image's /etc/passwd and /etc/group text (empty when it has none). */
export interface IdFiles {
  passwd: string;
  group: string;
}

function lookup(text: string, key: string): string[] | undefined {
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length >= 3 && (fields[0] === key || fields[2] === key)) return fields;
  }
  return undefined;
}

const ID = /^\d+$/;

/**
 * An image's `User` ("name", "uid", "name:group", "uid:gid", ...) as
 * numeric ids.  A numeric uid missing from /etc/passwd is used as it is,
 * with gid 0, as docker does; a name must be found.
 */
export function resolveUser(user: string, files: IdFiles): { uid: number; gid: number } {
  const [name = "", group] = user.split(":", 2);
  const entry = lookup(files.passwd, name);
  let uid: number;
  let gid: number;
  if (entry) {
    uid = Number(entry[2]);
    gid = Number(entry[3] ?? 0);
  } else if (ID.test(name)) {
    uid = Number(name);
    gid = 0;
  } else {
    throw new DokrustError(`image user ${JSON.stringify(user)}: no user ${name} in the image's /etc/passwd`);
  }
  if (group !== undefined && group !== "") {
    const g = lookup(files.group, group);
    if (g) gid = Number(g[2]);
    else if (ID.test(group)) gid = Number(group);
    else throw new DokrustError(`image user ${JSON.stringify(user)}: no group ${group} in the image's /etc/group`);
  }
  if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(gid) || uid > 0xfffffffe || gid > 0xfffffffe) {
    throw new DokrustError(`image user ${JSON.stringify(user)}: id out of range`);
  }
  return { uid, gid };
}

/** The command line's run with the image config's defaults filled in. */
export function applyImageConfig(given: GivenRun, config: RunConfig, files: IdFiles): ResolvedRun {
  const entrypoint = config.Entrypoint ?? [];
  let args: string[];
  if (given.shell) args = given.args;
  else args = [...entrypoint, ...(given.args.length ? given.args : config.Cmd ?? [])];
  if (!args.length) throw new DokrustError("no command given, and the image has neither Entrypoint nor Cmd");
  const resolved: ResolvedRun = { args, env: [...(config.Env ?? []), ...given.env] };
  const workdir = given.workdir ?? (config.WorkingDir?.startsWith("/") ? config.WorkingDir : undefined);
  if (workdir !== undefined) resolved.workdir = workdir;
  const user = given.user ?? (config.User ? resolveUser(config.User, files) : undefined);
  if (user) resolved.user = user;
  return resolved;
}
