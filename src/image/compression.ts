/**
 * Compressed streams: which compression a file uses, told by its first
 * bytes (never by its name), and a decompressing stream for it.  gzip and
 * zstd come from node:zlib (built into Bun); xz from xz-decompress, a
 * WebAssembly build of xz-embedded (no native add-on to compile).
 */
import { Readable, type Duplex } from "node:stream";
import { createGunzip, createZstdDecompress } from "node:zlib";
import { openSync, readSync, closeSync } from "node:fs";
import { XzReadableStream } from "xz-decompress";
import { DokrustError } from "../errors.ts";

export type Compression = "gzip" | "zstd" | "xz" | "bzip2" | "none";

/** The compression of data starting with `head`. */
export function detectCompression(head: Uint8Array): Compression {
  const starts = (...bytes: number[]) => bytes.every((b, i) => head[i] === b);
  if (starts(0x1f, 0x8b)) return "gzip";
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) return "zstd";
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return "xz";
  if (starts(0x42, 0x5a, 0x68)) return "bzip2";
  return "none";
}

/** The first bytes of a file (fewer when it is shorter). */
export function readHead(path: string, length = 512): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const buf = new Uint8Array(length);
    const n = readSync(fd, buf, 0, length, 0);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** The compression of a file, by its magic bytes. */
export function fileCompression(path: string): Compression {
  return detectCompression(readHead(path, 8));
}

/**
 * `input` decompressed.  Errors of the decoder surface on the returned
 * stream; use it with stream.pipeline so that they end everything.
 */
export function decompress(input: Readable, compression: Compression): Readable | Duplex {
  switch (compression) {
    case "none":
      return input;
    case "gzip":
      return pipeInto(input, createGunzip());
    case "zstd":
      return pipeInto(input, createZstdDecompress());
    case "xz": {
      const web = Readable.toWeb(input) as unknown as ReadableStream<Uint8Array>;
      return Readable.fromWeb(new XzReadableStream(web) as unknown as import("node:stream/web").ReadableStream<Uint8Array>);
    }
    case "bzip2":
      throw new DokrustError("bzip2-compressed archives are not supported (use gzip, zstd, xz or none)");
  }
}

function pipeInto(input: Readable, decoder: Duplex): Duplex {
  input.on("error", (err) => decoder.destroy(err));
  return input.pipe(decoder);
}
