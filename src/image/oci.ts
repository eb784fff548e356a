/**
 * The OCI image-spec documents dokrust reads (index, manifest, config)
 * and their Docker schema 2 twins, with the media types that tell them
 * apart.  Types only, plus the checks that turn untrusted JSON into them.
 */
import { DokrustError } from "../errors.ts";

export const MEDIA = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerForeignGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

/** Media types of an index (a list of manifests, one per platform). */
export const INDEX_TYPES: ReadonlySet<string> = new Set([MEDIA.ociIndex, MEDIA.dockerList]);
/** Media types of an image manifest. */
export const MANIFEST_TYPES: ReadonlySet<string> = new Set([MEDIA.ociManifest, MEDIA.dockerManifest]);
/** Media types of a layer dokrust can unpack. */
export const LAYER_TYPES: ReadonlySet<string> = new Set([
  MEDIA.ociLayer,
  MEDIA.ociLayerGzip,
  MEDIA.ociLayerZstd,
  MEDIA.dockerLayerGzip,
  MEDIA.dockerForeignGzip,
  // The "nondistributable" variants are the same tar streams.
  "application/vnd.oci.image.layer.nondistributable.v1.tar",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
]);

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

export interface Index {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
}

export interface Manifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

/** The part of an image config that says how to run it. */
export interface RunConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
}

export interface ImageConfig {
  architecture: string;
  os: string;
  created?: string;
  config?: RunConfig;
  rootfs: { type: string; diff_ids: string[] };
  history?: object[];
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

function fail(what: string, why: string): never {
  throw new DokrustError(`${what}: ${why}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A descriptor from untrusted JSON; `what` names it in errors. */
export function checkDescriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v)) fail(what, "not a descriptor object");
  if (typeof v.mediaType !== "string") fail(what, "no mediaType");
  if (typeof v.digest !== "string" || !DIGEST.test(v.digest)) fail(what, `unsupported or malformed digest ${JSON.stringify(v.digest)} (only sha256 is supported)`);
  if (typeof v.size !== "number" || !Number.isSafeInteger(v.size) || v.size < 0) fail(what, "no valid size");
  return v as unknown as Descriptor;
}

/** Parse a JSON document, naming it in the error. */
export function parseJson(bytes: Uint8Array | string, what: string): unknown {
  try {
    return JSON.parse(typeof bytes === "string" ? bytes : new TextDecoder().decode(bytes));
  } catch (err) {
    return fail(what, `not valid JSON (${(err as Error).message.split("\n")[0]})`);
  }
}

/** An index (OCI index or Docker manifest list). */
export function checkIndex(v: unknown, what: string): Index {
  if (!isObject(v) || !Array.isArray(v.manifests)) fail(what, "not an image index (no manifests list)");
  v.manifests.forEach((d, i) => checkDescriptor(d, `${what}: manifests[${i}]`));
  return v as unknown as Index;
}

/** An image manifest (OCI or Docker schema 2). */
export function checkManifest(v: unknown, what: string): Manifest {
  if (!isObject(v)) fail(what, "not a manifest object");
  if (v.schemaVersion !== 2) fail(what, `unsupported schemaVersion ${JSON.stringify(v.schemaVersion)}`);
  if (typeof v.mediaType === "string" && !MANIFEST_TYPES.has(v.mediaType)) fail(what, `unknown manifest media type ${v.mediaType}`);
  checkDescriptor(v.config, `${what}: config`);
  if (!Array.isArray(v.layers)) fail(what, "no layers list");
  v.layers.forEach((d, i) => {
    const layer = checkDescriptor(d, `${what}: layers[${i}]`);
    if (!LAYER_TYPES.has(layer.mediaType)) fail(`${what}: layers[${i}]`, `unknown layer media type ${layer.mediaType}`);
  });
  return v as unknown as Manifest;
}

/** An image config. */
export function checkConfig(v: unknown, what: string): ImageConfig {
  if (!isObject(v)) fail(what, "not a config object");
  const rootfs = v.rootfs;
  if (!isObject(rootfs) || rootfs.type !== "layers" || !Array.isArray(rootfs.diff_ids)) fail(what, "no rootfs.diff_ids");
  for (const id of rootfs.diff_ids) if (typeof id !== "string" || !DIGEST.test(id)) fail(what, `bad diff_id ${JSON.stringify(id)}`);
  if (v.config !== undefined && v.config !== null && !isObject(v.config)) fail(what, "config is not an object");
  return v as unknown as ImageConfig;
}

/** The GOARCH name of the machine dokrust runs on (amd64, arm64, ...). */
export function hostArchitecture(): string {
  const names: Record<string, string> = { x64: "amd64", ia32: "386", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
  return names[process.arch] ?? process.arch;
}

/** Whether `p` names this machine's platform (linux/amd64 here). */
export function isHostPlatform(p: Platform | undefined): boolean {
  return p !== undefined && p.os === "linux" && p.architecture === hostArchitecture();
}
