/**
 * Reading tar streams with tar-stream, plus the one thing it gets wrong
 * for container layers: PAX records are decoded as UTF-8, which mangles
 * binary extended attributes (security.capability is a binary struct).
 * We subclass its extractor and re-decode the `SCHILY.xattr.*` records of
 * each PAX header byte for byte; everything else (ustar, GNU long names,
 * PAX paths and sizes, base-256 numbers) stays tar-stream's.
 */
import type { Readable } from "node:stream";
import tar from "tar-stream";
import { DokrustError } from "../errors.ts";

/** A tar header as tar-stream gives it, with the PAX records it applied. */
export interface TarHeader {
  name: string;
  type: string | null;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime?: Date;
  linkname: string | null;
  devmajor: number;
  devminor: number;
  pax?: Record<string, string> | null;
}

/** An entry's content (a streamx stream: async-iterable, resumable). */
export interface EntryStream extends AsyncIterable<Uint8Array> {
  resume(): unknown;
}

/** One entry: its header and the stream of its content. */
export interface TarEntry {
  header: TarHeader;
  stream: EntryStream;
}

const XATTR = "SCHILY.xattr.";

/** PAX records of `buf` whose key starts with SCHILY.xattr., values as latin1 (one char per byte). */
function binaryXattrRecords(buf: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < buf.length) {
    let space = at;
    while (space < buf.length && buf[space] !== 0x20) space++;
    const len = Number.parseInt(Buffer.from(buf.subarray(at, space)).toString("latin1"), 10);
    if (!len || at + len > buf.length) break;
    const record = Buffer.from(buf.subarray(space + 1, at + len - 1));
    const eq = record.indexOf(0x3d);
    if (eq > 0) {
      const key = record.subarray(0, eq).toString("utf8");
      if (key.startsWith(XATTR)) out[key] = record.subarray(eq + 1).toString("latin1");
    }
    at += len;
  }
  return out;
}

interface ExtractInternals {
  _header: { type: string } | null;
  _pax: Record<string, string> | null;
  _decodeLongHeader(buf: Uint8Array): void;
}

type ExtractClass = new () => tar.Extract;
const Base = Object.getPrototypeOf(tar.extract()).constructor as ExtractClass;

class BinaryPaxExtract extends Base {
  _decodeLongHeader(buf: Uint8Array): void {
    const self = this as unknown as ExtractInternals;
    (Base.prototype as unknown as ExtractInternals)._decodeLongHeader.call(this, buf);
    if (self._header?.type === "pax-header" && self._pax) Object.assign(self._pax, binaryXattrRecords(buf));
  }
}

/**
 * The entries of the tar stream `source`, in order.  Each entry's stream
 * must be consumed (or resumed) before the next one comes.  An error of
 * `source` (a truncated or corrupt compressed stream) ends the iteration
 * with that error.
 */
export async function* tarEntries(source: Readable, what: string): AsyncGenerator<TarEntry> {
  const extract = new BinaryPaxExtract();
  source.on("error", (err) => extract.destroy(err));
  source.pipe(extract);
  let count = 0;
  try {
    for await (const entry of extract) {
      count++;
      yield { header: entry.header as unknown as TarHeader, stream: entry as unknown as EntryStream };
    }
  } catch (err) {
    throw tarError(err, what);
  } finally {
    source.unpipe(extract);
    if (!source.readableEnded) source.destroy();
  }
  if (count === 0) throw new DokrustError(`${what}: not a tar archive (no entries)`);
}

/** A one-line error for what tar-stream or a decoder threw. */
export function tarError(err: unknown, what: string): DokrustError {
  if (err instanceof DokrustError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const truncated = /unexpected end|STREAM_DESTROYED|premature close/i.test(message);
  const why = truncated ? "truncated archive (unexpected end of data)" : `corrupt archive (${message.split("\n")[0]!.toLowerCase()})`;
  return new DokrustError(`${what}: ${why}`, { cause: err });
}

/** The bytes of an xattr value carried as latin1 text (one char per byte). */
export function xattrValue(text: string): Uint8Array {
  return Buffer.from(text, "latin1");
}

/** The extended attributes a header carries (name → bytes). */
export function headerXattrs(header: TarHeader): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const [key, value] of Object.entries(header.pax ?? {})) {
    if (key.startsWith(XATTR)) out.set(key.slice(XATTR.length), xattrValue(value));
  }
  return out;
}
