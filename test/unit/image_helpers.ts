/**
 * Building tar archives for the image tests with tar-stream (the library
 * dokrust reads them with), plus the two header kinds its packer cannot
 * write: GNU long names and PAX records with binary values.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { Readable } from "node:stream";
import tar from "tar-stream";

export interface Entry {
  name: string;
  type?: "file" | "directory" | "symlink" | "link" | "character-device" | "block-device" | "fifo";
  content?: string | Uint8Array;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  devmajor?: number;
  devminor?: number;
  mtime?: Date;
  /** PAX records written raw (values are bytes, so binary xattrs survive). */
  pax?: Record<string, Uint8Array | string>;
  /** Write the name as a GNU ././@LongLink record. */
  gnuLongName?: boolean;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0");
}

/** One raw 512-byte ustar/GNU header block. */
function rawHeader(name: string, typeflag: string, size: number, gnu: boolean): Uint8Array {
  const block = Buffer.alloc(512);
  block.write(name.slice(0, 100), 0, "utf8");
  block.write(octal(0o644, 8), 100);
  block.write(octal(0, 8), 108);
  block.write(octal(0, 8), 116);
  block.write(octal(size, 12), 124);
  block.write(octal(0, 12), 136);
  block.write("        ", 148);
  block.write(typeflag, 156);
  if (gnu) block.write("ustar  \0", 257, "latin1");
  else block.write("ustar\x0000", 257, "latin1");
  let sum = 0;
  for (const b of block) sum += b;
  block.write(`${octal(sum, 7)}\0`, 148);
  return block;
}

function padded(data: Uint8Array): Uint8Array {
  const out = Buffer.alloc(Math.ceil(data.length / 512) * 512);
  out.set(data);
  return out;
}

function paxRecords(pax: Record<string, Uint8Array | string>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [key, value] of Object.entries(pax)) {
    const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from("\n")]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    parts.push(Buffer.concat([Buffer.from(String(len)), body]));
  }
  return Buffer.concat(parts);
}

/** A tar archive holding `entries`, as bytes. */
export async function makeTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();
  for (const e of entries) {
    if (e.pax) {
      // tar-stream's packer encodes PAX values as UTF-8 text: push raw blocks.
      const records = paxRecords(e.pax);
      pack.push(Buffer.concat([rawHeader("PaxHeaders/x", "x", records.length, false), padded(records)]));
    }
    let name = e.name;
    if (e.gnuLongName) {
      // tar-stream's packer writes no GNU records: push the raw blocks.
      const long = Buffer.from(`${e.name}\0`);
      pack.push(Buffer.concat([rawHeader("././@LongLink", "L", long.length, true), padded(long)]));
      name = e.name.slice(0, 99);
    }
    const content = e.content === undefined ? undefined : Buffer.from(e.content);
    const header = {
      name,
      type: e.type ?? "file",
      mode: e.mode ?? (e.type === "directory" ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: e.mtime ?? new Date(1_700_000_000_000),
      linkname: e.linkname ?? "",
      devmajor: e.devmajor ?? 0,
      devminor: e.devminor ?? 0,
      size: content?.length ?? 0,
    };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (content) pack.entry(header, content, cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/** A readable stream of `bytes`. */
export function streamOf(bytes: Uint8Array): Readable {
  return Readable.from([Buffer.from(bytes)]);
}

/** A fresh temporary directory named dokrust-test-…; remove it with cleanup(). */
export function scratchDir(name: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(`/tmp/dokrust-test-${name}-`);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export const isRoot = process.getuid?.() === 0;
