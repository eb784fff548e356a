/**
 * Image archives: a tar (possibly compressed) holding an OCI layout or a
 * `docker save` archive.  Such a file is told from a root file system
 * tarball by its names alone: every entry of an image archive is one of
 * the few names those formats use, and a root file system has `bin/`,
 * `etc/` and the like among its first entries, so reading stops there.
 *
 * The archive's files are extracted into a staging directory in the
 * store (regular files, directories, and the symlinks old `docker save`
 * archives use between identical layers), then read as a directory.
 */
import { createReadStream, mkdirSync, realpathSync, symlinkSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { DokrustError } from "../errors.ts";
import { decompress, fileCompression } from "./compression.ts";
import { tarEntries } from "./tar.ts";
import { entryComponents, SafeTree } from "./unpack.ts";

const ARCHIVE_NAME =
  /^(|oci-layout|index\.json|manifest\.json|repositories|blobs(\/[a-z0-9]+(\/[a-f0-9]{32,})?)?|[a-f0-9]{64}(\.json|\.tar|\/(layer\.tar|json|VERSION))?)$/;

/** Whether a directory holds an OCI layout or a docker-save archive. */
export function imageDirKind(files: ReadonlySet<string>): "oci" | "docker" | undefined {
  if (files.has("manifest.json")) return "docker";
  if (files.has("oci-layout") || files.has("index.json")) return "oci";
  return undefined;
}

/**
 * Extract the image archive `file` into `dest` (created here).  Returns
 * false, having extracted only a few entries, when it is not an image
 * archive (a root file system tarball).
 */
export async function extractImageArchive(file: string, dest: string): Promise<boolean> {
  mkdirSync(dest, { mode: 0o700 });
  const what = `archive ${file}`;
  const tree = new SafeTree(dest, what);
  const top = new Set<string>();
  const source = decompress(createReadStream(file), fileCompression(file));
  for await (const { header, stream } of tarEntries(source, what)) {
    if (header.type === "pax-global-header") {
      stream.resume();
      continue;
    }
    const parts = entryComponents(header.name, what);
    if (!ARCHIVE_NAME.test(parts.join("/"))) {
      stream.resume();
      return false;
    }
    if (parts.length === 1) top.add(parts[0]!);
    if (!parts.length) {
      stream.resume();
      continue;
    }
    tree.parents(parts, header.name);
    const path = tree.path(parts);
    if (header.type === "directory") {
      stream.resume();
      tree.clear(path, true);
      mkdirSync(path, { recursive: true, mode: 0o700 });
      tree.addDir(path);
    } else if (header.type === "file" || header.type === "contiguous-file") {
      tree.clear(path, false);
      await writeFile(path, stream, { mode: 0o600 });
    } else if (header.type === "symlink") {
      stream.resume();
      tree.clear(path, false);
      symlinkSync(header.linkname ?? "", path);
    } else {
      stream.resume();
      throw new DokrustError(`${what}: entry ${JSON.stringify(header.name)}: unexpected ${header.type} in an image archive`);
    }
  }
  if (!imageDirKind(top)) throw new DokrustError(`${what}: an image archive without index.json or manifest.json`);
  return true;
}

/**
 * The real path of `rel` inside `root`, refusing any that a symlink leads
 * out of `root`.
 */
export function fileInside(root: string, rel: string, what: string): string {
  const parts = entryComponents(rel, what);
  let real: string;
  try {
    real = realpathSync(`${root}/${parts.join("/")}`);
  } catch {
    throw new DokrustError(`${what}: ${rel} is missing`);
  }
  const base = realpathSync(root);
  if (real !== base && !real.startsWith(`${base}/`)) throw new DokrustError(`${what}: ${rel} leads out of the image (a symlink)`);
  return real;
}
