/**
 * `dokrust pull REF`: the OCI distribution API.  The manifest (or an
 * index / manifest list, narrowed to this machine's platform), the
 * config and the layers are fetched, each checked against its digest,
 * and stored as an import would store them (staging directory, rename,
 * record last).  Layers the store already has are not downloaded.
 *
 * Authentication: anonymous bearer tokens.  A 401 whose WWW-Authenticate
 * asks for `Bearer realm=…,service=…,scope=…` is answered by fetching a
 * token from the realm and retrying with it.
 */
import { createHash } from "node:crypto";
import { closeSync, openSync, rmSync, writeSync } from "node:fs";
import { DokrustError } from "../errors.ts";
import { checkDigest, sha256 } from "./digest.ts";
import { commitImage } from "./import.ts";
import { stageLayer } from "./layer.ts";
import {
  checkConfig,
  checkIndex,
  checkManifest,
  INDEX_TYPES,
  MANIFEST_TYPES,
  MEDIA,
  parseJson,
  type Descriptor,
} from "./oci.ts";
import { Progress } from "./progress.ts";
import { isLocalRegistry, parseReference, type Reference } from "./reference.ts";
import { pickManifest, type ImagePlan } from "./sources.ts";
import { checkImageName, ImageStore, type ImageRecord } from "./store.ts";

const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.dockerManifest].join(", ");

export interface PullOptions {
  /** Use http even for a registry not on this machine. */
  insecure?: boolean;
  /** Store the image under this name (default: the reference as given). */
  name?: string | undefined;
}

/** Parse `Bearer realm="…",service="…"` (the parameters, lowercased keys). */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(" ");
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  for (const m of header.slice(space + 1).matchAll(/([A-Za-z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : m[3]!;
  }
  return { scheme, params };
}

/** A client of one repository on one registry. */
class Registry {
  readonly #ref: Reference;
  readonly #base: string;
  #token: string | undefined;

  constructor(ref: Reference, insecure: boolean) {
    this.#ref = ref;
    const scheme = insecure || isLocalRegistry(ref.registry) ? "http" : "https";
    this.#base = `${scheme}://${ref.registry}/v2/${ref.repository}`;
  }

  /** GET a path under the repository, answering one bearer challenge. */
  async get(path: string, what: string, accept?: string): Promise<Response> {
    let response = await this.#fetch(path, what, accept);
    if (response.status === 401 && this.#token === undefined) {
      await this.#authenticate(response, what);
      response = await this.#fetch(path, what, accept);
    }
    if (!response.ok) throw await httpError(response, what);
    return response;
  }

  async #fetch(path: string, what: string, accept?: string): Promise<Response> {
    const headers: Record<string, string> = {};
    if (accept) headers.accept = accept;
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    try {
      return await fetch(`${this.#base}${path}`, { headers });
    } catch (err) {
      throw new DokrustError(`${what}: ${this.#base}${path}: ${(err as Error).message}`);
    }
  }

  async #authenticate(response: Response, what: string): Promise<void> {
    const header = response.headers.get("www-authenticate") ?? "";
    const { scheme, params } = parseChallenge(header);
    await response.body?.cancel();
    if (scheme !== "bearer" || !params.realm) {
      throw new DokrustError(`${what}: the registry asks for ${scheme || "unknown"} authentication, which dokrust does not do (only anonymous bearer tokens)`);
    }
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set("service", params.service);
    url.searchParams.set("scope", params.scope ?? `repository:${this.#ref.repository}:pull`);
    let tokenResponse: Response;
    try {
      tokenResponse = await fetch(url);
    } catch (err) {
      throw new DokrustError(`${what}: token from ${url.origin}${url.pathname}: ${(err as Error).message}`);
    }
    if (!tokenResponse.ok) throw await httpError(tokenResponse, `${what}: token from ${url.origin}${url.pathname}`);
    const body = (await tokenResponse.json().catch(() => ({}))) as { token?: unknown; access_token?: unknown };
    const token = typeof body.token === "string" ? body.token : body.access_token;
    if (typeof token !== "string" || !token) throw new DokrustError(`${what}: the token server ${url.origin} answered without a token`);
    this.#token = token;
  }
}

async function httpError(response: Response, what: string): Promise<DokrustError> {
  let detail = "";
  try {
    const body = (await response.json()) as { errors?: Array<{ code?: string; message?: string }> };
    const first = body.errors?.[0];
    if (first) detail = ` (${[first.code, first.message].filter(Boolean).join(": ")})`;
  } catch {
    // not a registry error document
  }
  return new DokrustError(`${what}: ${response.status} ${response.statusText.toLowerCase()}${detail}`);
}

async function fetchJson(registry: Registry, path: string, what: string, expected?: string, accept?: string): Promise<{ bytes: Uint8Array; type: string }> {
  const response = await registry.get(path, what, accept);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (expected) checkDigest(what, expected, sha256(bytes));
  else {
    const claimed = response.headers.get("docker-content-digest");
    if (claimed?.startsWith("sha256:")) checkDigest(what, claimed, sha256(bytes));
  }
  return { bytes, type: (response.headers.get("content-type") ?? "").split(";")[0]!.trim() };
}

/** The image manifest for this platform (following an index), checked. */
async function resolveManifest(registry: Registry, ref: Reference, what: string): Promise<{ bytes: Uint8Array; digest: string }> {
  let got = await fetchJson(registry, `/manifests/${ref.reference}`, `${what}: manifest ${ref.reference}`, ref.byDigest ? ref.reference : undefined, MANIFEST_ACCEPT);
  for (let depth = 0; ; depth++) {
    const doc = parseJson(got.bytes, `${what}: manifest`) as { mediaType?: string; manifests?: unknown };
    const type = doc.mediaType ?? got.type;
    const isIndex = INDEX_TYPES.has(type) || (!MANIFEST_TYPES.has(type) && Array.isArray(doc.manifests));
    if (!isIndex) {
      if (!MANIFEST_TYPES.has(type)) throw new DokrustError(`${what}: unknown manifest media type ${JSON.stringify(type)}`);
      return { bytes: got.bytes, digest: sha256(got.bytes) };
    }
    if (depth > 3) throw new DokrustError(`${what}: indexes nested too deep`);
    const picked: Descriptor = pickManifest(checkIndex(doc, `${what}: index`).manifests, `${what}: index`);
    got = await fetchJson(registry, `/manifests/${picked.digest}`, `${what}: manifest ${picked.digest}`, picked.digest, MANIFEST_ACCEPT);
  }
}

/** Download a blob to `file`, checking its digest and size; reports progress. */
async function download(registry: Registry, desc: Descriptor, file: string, what: string, progress: Progress): Promise<void> {
  const response = await registry.get(`/blobs/${desc.digest}`, what);
  const hash = createHash("sha256");
  let bytes = 0;
  const fd = openSync(file, "wx", 0o600);
  try {
    if (!response.body) throw new DokrustError(`${what}: empty response`);
    for await (const chunk of response.body) {
      hash.update(chunk);
      writeSync(fd, chunk);
      bytes += chunk.length;
      progress.update(what, bytes, desc.size);
      if (bytes > desc.size) throw new DokrustError(`${what}: larger than the ${desc.size} bytes the manifest says`);
    }
  } finally {
    closeSync(fd);
  }
  if (bytes !== desc.size) throw new DokrustError(`${what}: got ${bytes} bytes, the manifest says ${desc.size} (truncated download?)`);
  checkDigest(what, desc.digest, `sha256:${hash.digest("hex")}`);
  progress.done(what);
}

async function pullStaged(ref: Reference, name: string, store: ImageStore, options: PullOptions, staging: string): Promise<ImageRecord> {
  const what = `pull ${name}`;
  const registry = new Registry(ref, options.insecure ?? false);
  const manifestDoc = await resolveManifest(registry, ref, what);
  const manifest = checkManifest(parseJson(manifestDoc.bytes, `${what}: manifest`), `${what}: manifest ${manifestDoc.digest}`);
  const configBytes = (await fetchJson(registry, `/blobs/${manifest.config.digest}`, `${what}: config`, manifest.config.digest)).bytes;
  const config = checkConfig(parseJson(configBytes, `${what}: config`), `${what}: config ${manifest.config.digest}`);
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new DokrustError(`${what}: the manifest has ${manifest.layers.length} layers, the config ${config.rootfs.diff_ids.length} diff_ids`);
  }
  const progress = new Progress(process.stderr);
  const staged = new Map<string, string>();
  for (const [i, layer] of manifest.layers.entries()) {
    const diffId = config.rootfs.diff_ids[i]!;
    const layerWhat = `layer ${i + 1}/${manifest.layers.length} ${layer.digest.slice(7, 19)}`;
    if (store.hasLayer(diffId) || staged.has(diffId)) {
      progress.note(`${layerWhat}: already in the store`);
      continue;
    }
    const file = `${staging}/blob-${i}`;
    await download(registry, layer, file, layerWhat, progress);
    await stageLayer({ file, what: layerWhat, digest: layer.digest, diffId }, `${staging}/layer-${i}`);
    rmSync(file, { force: true });
    staged.set(diffId, `${staging}/layer-${i}`);
  }
  const plan: ImagePlan = { manifest, manifestBytes: manifestDoc.bytes, config, configBytes, layers: [] };
  return commitImage(store, staging, plan, staged, name, `${ref.registry}/${ref.repository}${ref.byDigest ? "@" : ":"}${ref.reference}`);
}

/** Pull `text` (a reference) into the store. */
export async function pullImage(text: string, store: ImageStore, options: PullOptions = {}): Promise<ImageRecord> {
  const ref = parseReference(text);
  const name = checkImageName(options.name ?? text);
  return store.locked(async () => {
    const staging = store.tempDir();
    try {
      return await pullStaged(ref, name, store, options, staging);
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  });
}
