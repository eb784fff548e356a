/**
 * sha256 digests: hashing streams as they pass, and checking what came
 * against what a descriptor promised.
 */
import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { DokrustError } from "../errors.ts";

/** A pass-through stream that hashes and counts what flows through it. */
export class HashingStream extends Transform {
  readonly #hash: Hash = createHash("sha256");
  #bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
    done(null, chunk);
  }

  /** "sha256:<hex>" of everything seen (call once, after the end). */
  digest(): string {
    return `sha256:${this.#hash.digest("hex")}`;
  }

  get bytes(): number {
    return this.#bytes;
  }
}

/** "sha256:<hex>" of a buffer. */
export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** The hex part of "sha256:<hex>". */
export function hexOf(digest: string): string {
  if (!/^sha256:[a-f0-9]{64}$/.test(digest)) throw new DokrustError(`malformed digest ${JSON.stringify(digest)}`);
  return digest.slice(7);
}

/** Throw the one-line digest mismatch error. */
export function checkDigest(what: string, expected: string, actual: string): void {
  if (expected !== actual) throw new DokrustError(`${what}: digest mismatch: expected ${expected}, got ${actual}`);
}
