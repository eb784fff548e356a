/**
 * Image references as docker reads them: [registry[:port]/]path[:tag][@digest].
 * A first component with a dot, a colon or "localhost" names a registry;
 * otherwise the image is on Docker Hub (library/ added for one-word names).
 */
import { DokrustError } from "../errors.ts";

export interface Reference {
  /** host[:port] the API is at. */
  registry: string;
  /** Repository path ("library/alpine", "demo"). */
  repository: string;
  /** Tag or digest to fetch the manifest by. */
  reference: string;
  /** Whether `reference` is a digest (then the manifest is checked against it). */
  byDigest: boolean;
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;

/** Parse an image reference; throws a one-line error when malformed. */
export function parseReference(text: string): Reference {
  const bad = (why: string) => new DokrustError(`image reference ${JSON.stringify(text)}: ${why}`);
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) throw bad("the digest must be sha256:<64 hex digits>");
  }
  const parts = rest.split("/");
  let registry = "registry-1.docker.io";
  if (parts.length > 1 && /[.:]|^localhost$/.test(parts[0]!)) registry = parts.shift()!;
  else if (parts.length === 1) parts.unshift("library");
  let tag = "latest";
  const last = parts[parts.length - 1]!;
  const colon = last.lastIndexOf(":");
  if (colon >= 0) {
    tag = last.slice(colon + 1);
    parts[parts.length - 1] = last.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`bad tag ${JSON.stringify(tag)}`);
  }
  if (!parts.every((p) => PATH_COMPONENT.test(p))) throw bad("the repository may hold only lowercase letters, digits and separators");
  if (!/^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9a-fA-F:]+\](:\d+)?$/.test(registry)) throw bad(`bad registry ${JSON.stringify(registry)}`);
  return { registry, repository: parts.join("/"), reference: digest ?? tag, byDigest: digest !== undefined };
}

/** Whether the registry is on this machine (then plain http is used, as docker does). */
export function isLocalRegistry(registry: string): boolean {
  const host = registry.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}
