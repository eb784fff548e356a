/**
 * Reading the two image directory formats into one plan: an OCI image
 * layout (oci-layout, index.json, blobs/) and a `docker save` archive
 * (manifest.json naming a config file and layer tars).  Every blob read
 * is checked against its digest; layers are checked as they are unpacked.
 */
import { readFileSync, statSync } from "node:fs";
import { DokrustError } from "../errors.ts";
import { fileInside } from "./archive.ts";
import { checkDigest, hexOf, sha256 } from "./digest.ts";
import type { LayerFile } from "./layer.ts";
import {
  checkConfig,
  checkIndex,
  checkManifest,
  INDEX_TYPES,
  isHostPlatform,
  MANIFEST_TYPES,
  MEDIA,
  parseJson,
  type Descriptor,
  type ImageConfig,
  type Manifest,
} from "./oci.ts";

/** An image ready to be stored: its documents, checked, and its layer files. */
export interface ImagePlan {
  manifest: Manifest;
  manifestBytes: Uint8Array;
  config: ImageConfig;
  configBytes: Uint8Array;
  layers: LayerFile[];
}

function readBlob(dir: string, desc: Descriptor, what: string): Uint8Array {
  const path = fileInside(dir, `blobs/sha256/${hexOf(desc.digest)}`, what);
  const bytes = readFileSync(path);
  checkDigest(`${what} ${desc.digest}`, desc.digest, sha256(bytes));
  if (bytes.length !== desc.size) throw new DokrustError(`${what} ${desc.digest}: size ${bytes.length}, the descriptor says ${desc.size}`);
  return bytes;
}

/** The one manifest of an index for this machine's platform. */
export function pickManifest(manifests: Descriptor[], what: string): Descriptor {
  const candidates = manifests.filter((d) => MANIFEST_TYPES.has(d.mediaType) || INDEX_TYPES.has(d.mediaType));
  if (!candidates.length) {
    const types = [...new Set(manifests.map((d) => d.mediaType))].join(", ") || "none";
    throw new DokrustError(`${what}: no image manifest (unknown manifest media type: ${types})`);
  }
  if (candidates.length === 1) return candidates[0]!;
  const host = candidates.filter((d) => isHostPlatform(d.platform));
  if (host.length >= 1) return host[0]!;
  throw new DokrustError(`${what}: ${candidates.length} manifests and none for linux/${process.arch === "x64" ? "amd64" : process.arch}`);
}

/** Read an OCI image layout directory. */
export function readOciLayout(dir: string): ImagePlan {
  const what = `oci layout ${dir}`;
  const layout = parseJson(readFileSync(fileInside(dir, "oci-layout", what)), `${what}: oci-layout`) as { imageLayoutVersion?: unknown };
  if (typeof layout?.imageLayoutVersion !== "string") throw new DokrustError(`${what}: oci-layout has no imageLayoutVersion`);
  const index = checkIndex(parseJson(readFileSync(fileInside(dir, "index.json", what)), `${what}: index.json`), `${what}: index.json`);
  let desc = pickManifest(index.manifests, `${what}: index.json`);
  for (let depth = 0; INDEX_TYPES.has(desc.mediaType); depth++) {
    if (depth > 4) throw new DokrustError(`${what}: indexes nested too deep`);
    const nested = checkIndex(parseJson(readBlob(dir, desc, `${what}: index`), `${what}: index ${desc.digest}`), `${what}: index ${desc.digest}`);
    desc = pickManifest(nested.manifests, `${what}: index ${desc.digest}`);
  }
  const manifestBytes = readBlob(dir, desc, `${what}: manifest`);
  const manifest = checkManifest(parseJson(manifestBytes, `${what}: manifest`), `${what}: manifest ${desc.digest}`);
  const configBytes = readBlob(dir, manifest.config, `${what}: config`);
  const config = checkConfig(parseJson(configBytes, `${what}: config`), `${what}: config ${manifest.config.digest}`);
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== manifest.layers.length) {
    throw new DokrustError(`${what}: the manifest has ${manifest.layers.length} layers, the config ${diffIds.length} diff_ids`);
  }
  const layers = manifest.layers.map((l, i) => {
    const layerWhat = `layer ${i + 1} of ${manifest.layers.length} (${l.digest})`;
    const file = fileInside(dir, `blobs/sha256/${hexOf(l.digest)}`, `${what}: ${layerWhat}`);
    if (statSync(file).size !== l.size) throw new DokrustError(`${what}: ${layerWhat}: size ${statSync(file).size}, the manifest says ${l.size}`);
    return { file, what: layerWhat, digest: l.digest, diffId: diffIds[i]! };
  });
  return { manifest, manifestBytes, config, configBytes, layers };
}

interface DockerEntry {
  Config?: unknown;
  RepoTags?: unknown;
  Layers?: unknown;
}

/**
 * Read a `docker save` directory.  The config file is named by (or
 * stored as) its digest; layer tars are checked against the config's
 * diff_ids.  A manifest in OCI form is made for the store.
 */
export function readDockerArchive(dir: string): ImagePlan {
  const what = `docker archive ${dir}`;
  const entries = parseJson(readFileSync(fileInside(dir, "manifest.json", what)), `${what}: manifest.json`);
  if (!Array.isArray(entries) || entries.length === 0) throw new DokrustError(`${what}: manifest.json lists no image`);
  if (entries.length > 1) throw new DokrustError(`${what}: manifest.json lists ${entries.length} images; import one at a time`);
  const entry = entries[0] as DockerEntry;
  if (typeof entry.Config !== "string" || !Array.isArray(entry.Layers) || !entry.Layers.every((l) => typeof l === "string")) {
    throw new DokrustError(`${what}: manifest.json: an entry without Config or Layers`);
  }
  const configBytes = readFileSync(fileInside(dir, entry.Config, what));
  const configDigest = sha256(configBytes);
  const named = /([a-f0-9]{64})(\.json)?$/.exec(entry.Config)?.[1];
  if (named) checkDigest(`${what}: config ${entry.Config}`, `sha256:${named}`, configDigest);
  const config = checkConfig(parseJson(configBytes, `${what}: config`), `${what}: config ${entry.Config}`);
  const paths = entry.Layers as string[];
  if (config.rootfs.diff_ids.length !== paths.length) {
    throw new DokrustError(`${what}: manifest.json has ${paths.length} layers, the config ${config.rootfs.diff_ids.length} diff_ids`);
  }
  const layers: LayerFile[] = paths.map((p, i) => {
    const layerWhat = `layer ${i + 1} of ${paths.length} (${p})`;
    const layer: LayerFile = { file: fileInside(dir, p, `${what}: ${layerWhat}`), what: layerWhat, diffId: config.rootfs.diff_ids[i]! };
    const blob = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(p)?.[1];
    if (blob) layer.digest = `sha256:${blob}`;
    return layer;
  });
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: configDigest, size: configBytes.length },
    // The layers as stored here: uncompressed tars, named by diff_id.
    layers: layers.map((l) => ({ mediaType: MEDIA.ociLayer, digest: l.diffId!, size: statSync(l.file).size })),
  };
  const manifestBytes = new TextEncoder().encode(JSON.stringify(manifest));
  return { manifest, manifestBytes, config, configBytes, layers };
}
