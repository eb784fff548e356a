/**
 * One layer from a file into the store: decompress (gzip, zstd, xz or
 * none, by magic bytes), hash both the bytes as stored and the tar
 * stream (the diff_id), unpack into a staging directory, and check both
 * digests against what the manifest and the config promised.
 */
import { createReadStream, mkdirSync } from "node:fs";
import { finished } from "node:stream/promises";
import { DokrustError } from "../errors.ts";
import { decompress, fileCompression } from "./compression.ts";
import { checkDigest, HashingStream } from "./digest.ts";
import { unpackLayer } from "./unpack.ts";

export interface LayerFile {
  /** The layer's bytes, compressed or not. */
  file: string;
  /** Name in errors ("layer 2 of 3 (sha256:…)"). */
  what: string;
  /** Digest of the file as a descriptor gives it, when known. */
  digest?: string;
  /** The diff_id the image config gives, when known. */
  diffId?: string;
}

export interface StagedLayer {
  diffId: string;
  /** Bytes of the uncompressed tar. */
  size: number;
  /** Entries not made without privilege. */
  skipped: string[];
}

/** Unpack `layer` into `dest` (created here), checking its digests. */
export async function stageLayer(layer: LayerFile, dest: string): Promise<StagedLayer> {
  const compression = fileCompression(layer.file);
  const input = createReadStream(layer.file);
  const stored = new HashingStream();
  const tarHash = new HashingStream();
  input.on("error", (err) => stored.destroy(err));
  let plain;
  try {
    plain = decompress(input.pipe(stored), compression);
  } catch (err) {
    input.destroy();
    throw err instanceof DokrustError ? err.wrap(layer.what) : err;
  }
  plain.on("error", (err) => tarHash.destroy(err));
  plain.pipe(tarHash);
  mkdirSync(dest, { mode: 0o755 });
  const result = await unpackLayer(tarHash, dest, { what: layer.what });
  if (!tarHash.readableEnded) await finished(tarHash);
  if (layer.digest) checkDigest(layer.what, layer.digest, stored.digest());
  const diffId = tarHash.digest();
  if (layer.diffId) checkDigest(`${layer.what}: diff_id (uncompressed)`, layer.diffId, diffId);
  return { diffId, size: tarHash.bytes, skipped: result.skipped };
}
