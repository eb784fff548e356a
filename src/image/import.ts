/**
 * `dokrust image import PATH --name NAME`: an OCI layout (directory or
 * archive), a `docker save` archive (directory or archive), a root file
 * system tarball (gzip, zstd, xz or none), or a root file system
 * directory (one layer).
 *
 * Everything is built in a staging directory of the store and moved into
 * place only when every digest has been checked; the image record is
 * written last.  A failure leaves the store as it was.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import type { Readable } from "node:stream";
import { DokrustError } from "../errors.ts";
import { extractImageArchive, imageDirKind } from "./archive.ts";
import { HashingStream, sha256 } from "./digest.ts";
import { stageLayer, type StagedLayer } from "./layer.ts";
import { hostArchitecture, MEDIA, type ImageConfig, type Manifest } from "./oci.ts";
import { readDockerArchive, readOciLayout, type ImagePlan } from "./sources.ts";
import { checkImageName, ImageStore, type ImageRecord } from "./store.ts";
import { unpackLayer } from "./unpack.ts";
import { DEFAULT_PATH } from "../spec/defaults.ts";

/** Say what is going on (stderr, one line each). */
export type Say = (line: string) => void;

/**
 * Move a staged image into the store and record it under `name`
 * (replacing an image of that name).  Call under the store's lock.
 */
export function commitImage(store: ImageStore, staging: string, plan: ImagePlan, staged: Map<string, string>, name: string, source: string): ImageRecord {
  const configDigest = sha256(plan.configBytes);
  const manifestDigest = sha256(plan.manifestBytes);
  writeFileSync(`${staging}/config`, plan.configBytes);
  writeFileSync(`${staging}/manifest`, plan.manifestBytes);
  for (const [diffId, dir] of staged) store.commitLayer(dir, diffId);
  store.commitBlob(`${staging}/config`, configDigest);
  store.commitBlob(`${staging}/manifest`, manifestDigest);
  const record: ImageRecord = {
    name,
    id: configDigest,
    manifest: manifestDigest,
    layers: plan.config.rootfs.diff_ids,
    added: new Date().toISOString(),
    source,
  };
  const records = store.records();
  records[name] = record;
  store.saveRecords(records);
  return record;
}

/** Unpack the plan's layers the store does not have yet into `staging`. */
async function stagePlanLayers(store: ImageStore, staging: string, plan: ImagePlan, say: Say): Promise<Map<string, string>> {
  const staged = new Map<string, string>();
  for (const [i, layer] of plan.layers.entries()) {
    const diffId = layer.diffId!;
    if (store.hasLayer(diffId) || staged.has(diffId)) continue;
    say(`unpacking ${layer.what}`);
    const dir = `${staging}/layer-${i}`;
    const done = await stageLayer(layer, dir);
    warnSkipped(done, say);
    staged.set(diffId, dir);
  }
  return staged;
}

function warnSkipped(layer: StagedLayer, say: Say): void {
  if (layer.skipped.length) say(`warning: ${layer.skipped.length} device nodes not created without root (${layer.skipped.slice(0, 3).join(", ")}...)`);
}

/** Config and manifest for an image of one layer made from a root file system. */
export function singleLayerImage(layer: StagedLayer): ImagePlan {
  const created = new Date().toISOString();
  const config: ImageConfig = {
    architecture: hostArchitecture(),
    os: "linux",
    created,
    config: { Env: [`PATH=${DEFAULT_PATH}`], Cmd: ["/bin/sh"] },
    rootfs: { type: "layers", diff_ids: [layer.diffId] },
    history: [{ created, created_by: "dokrust image import" }],
  };
  const configBytes = new TextEncoder().encode(JSON.stringify(config));
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: sha256(configBytes), size: configBytes.length },
    layers: [{ mediaType: MEDIA.ociLayer, digest: layer.diffId, size: layer.size }],
  };
  return { manifest, manifestBytes: new TextEncoder().encode(JSON.stringify(manifest)), config, configBytes, layers: [] };
}

/** A directory as a tar stream, made by GNU tar (xattrs, hard links, devices, owners). */
function tarOfDirectory(dir: string): { stream: Readable; done: Promise<void> } {
  const child = spawn("tar", ["--xattrs", "--xattrs-include=*", "--numeric-owner", "--sort=name", "--one-file-system", "-C", dir, "-cf", "-", "."], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<void>((resolve, reject) => {
    child.on("error", (err) => reject(new DokrustError(`read directory ${dir}: run tar: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
    child.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new DokrustError(`read directory ${dir}: tar exited with status ${code}: ${stderr.trim().split("\n")[0] ?? ""}`));
    });
  });
  return { stream: child.stdout, done };
}

async function stageDirectory(dir: string, dest: string): Promise<StagedLayer> {
  const { stream, done } = tarOfDirectory(dir);
  const hash = new HashingStream();
  stream.pipe(hash);
  mkdirSync(dest, { mode: 0o755 });
  const result = await unpackLayer(hash, dest, { what: `directory ${dir}` });
  await done;
  return { diffId: hash.digest(), size: hash.bytes, skipped: result.skipped };
}

async function importRootfs(store: ImageStore, staging: string, staged: StagedLayer, name: string, source: string): Promise<ImageRecord> {
  const plan = singleLayerImage(staged);
  const layers = new Map<string, string>();
  if (!store.hasLayer(staged.diffId)) layers.set(staged.diffId, `${staging}/layer`);
  return commitImage(store, staging, plan, layers, name, source);
}

async function importStaged(store: ImageStore, staging: string, path: string, name: string, say: Say): Promise<ImageRecord> {
  const st = statSync(path);
  if (st.isDirectory()) {
    const kind = imageDirKind(new Set(readdirSync(path)));
    if (kind) {
      const plan = kind === "oci" ? readOciLayout(path) : readDockerArchive(path);
      return commitImage(store, staging, plan, await stagePlanLayers(store, staging, plan, say), name, path);
    }
    say(`copying the root file system ${path}`);
    return importRootfs(store, staging, await stageDirectory(path, `${staging}/layer`), name, path);
  }
  if (!st.isFile()) throw new DokrustError(`import ${path}: not a file or directory`);
  if (await extractImageArchive(path, `${staging}/archive`)) {
    const dir = `${staging}/archive`;
    const kind = imageDirKind(new Set(readdirSync(dir)))!;
    const plan = kind === "oci" ? readOciLayout(dir) : readDockerArchive(dir);
    const record = commitImage(store, staging, plan, await stagePlanLayers(store, staging, plan, say), name, path);
    return record;
  }
  rmSync(`${staging}/archive`, { recursive: true, force: true });
  say(`unpacking the root file system tarball ${path}`);
  const staged = await stageLayer({ file: path, what: `tarball ${path}` }, `${staging}/layer`);
  warnSkipped(staged, say);
  return importRootfs(store, staging, staged, name, path);
}

/** Import the image at `path` as `name`; returns its record. */
export async function importImage(path: string, name: string, store: ImageStore, say: Say = () => {}): Promise<ImageRecord> {
  checkImageName(name);
  if (!existsSync(path)) throw new DokrustError(`import ${path}: no such file or directory`);
  return store.locked(async () => {
    const staging = store.tempDir();
    try {
      return await importStaged(store, staging, path, name, say);
    } catch (err) {
      if (err instanceof DokrustError) throw err.message.includes(path) ? err : err.wrap(`import ${path}`);
      const e = err as NodeJS.ErrnoException;
      throw new DokrustError(`import ${path}: ${e.syscall ? `${e.syscall} ${e.path ?? ""}: ` : ""}${e.code ?? e.message}`, { cause: err });
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  });
}
