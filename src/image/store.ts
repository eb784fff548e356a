/**
 * The image store: a content-addressed directory under the data root
 * (default /var/lib/dokrust, or $DOKRUST_DATA_ROOT).
 *
 *   blobs/sha256/<hex>     manifests and configs, named by their digest
 *   layers/<hex>/          unpacked layers, named by their diff_id (the
 *                          digest of the uncompressed tar), overlay form
 *   images.json            image name → manifest digest, config digest, layers
 *   tmp/<random>/          an import being built; renamed into place at the end
 *   lock                   flock(2) held by every command that changes the store
 *
 * Every write is atomic (a temporary file or directory in the store,
 * then rename), and commands that change the store hold the lock, so an
 * import killed half-way leaves only a directory in tmp/, which the next
 * command that takes the lock removes.
 */
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { DokrustError, fromNodeError } from "../errors.ts";
import { hexOf } from "./digest.ts";

/** The data root: $DOKRUST_DATA_ROOT, or /var/lib/dokrust. */
export function dataRoot(): string {
  return process.env.DOKRUST_DATA_ROOT || "/var/lib/dokrust";
}

/** What the store knows of one image. */
export interface ImageRecord {
  name: string;
  /** The config's digest: the image's id, as docker has it. */
  id: string;
  manifest: string;
  /** diff_ids of the layers, bottom first. */
  layers: string[];
  /** When it came into the store (ISO 8601). */
  added: string;
  /** Where it came from (a path or a registry reference). */
  source: string;
}

interface RecordsFile {
  version: 1;
  images: Record<string, ImageRecord>;
}

/** Image names: a reference as docker writes one (registry/path:tag), or a plain word. */
const NAME = /^[a-z0-9][a-z0-9._\-/:@]*$/i;

/** Throw unless `name` can name an image. */
export function checkImageName(name: string | undefined): string {
  if (name === undefined || name === "") throw new DokrustError("an image name is required (--name NAME)");
  if (name.length > 255 || !NAME.test(name) || name.includes("//") || name.endsWith("/")) {
    throw new DokrustError(`image name ${JSON.stringify(name)}: may hold only letters, digits and . _ - / : @, and must start with a letter or digit`);
  }
  return name;
}

/** Write `data` to `path` atomically (temporary file in the same directory, then rename). */
export function writeAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${randomBytes(6).toString("hex")}`;
  try {
    writeFileSync(tmp, data, { mode: 0o644, flush: true });
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw fromNodeError(err, `write ${path}`);
  }
}

export class ImageStore {
  readonly root: string;

  constructor(root: string = dataRoot()) {
    this.root = root;
  }

  get blobDir(): string {
    return `${this.root}/blobs/sha256`;
  }

  get layerDir(): string {
    return `${this.root}/layers`;
  }

  get tmpDir(): string {
    return `${this.root}/tmp`;
  }

  blobPath(digest: string): string {
    return `${this.blobDir}/${hexOf(digest)}`;
  }

  layerPath(diffId: string): string {
    return `${this.layerDir}/${hexOf(diffId)}`;
  }

  hasBlob(digest: string): boolean {
    return existsSync(this.blobPath(digest));
  }

  hasLayer(diffId: string): boolean {
    return existsSync(this.layerPath(diffId));
  }

  readBlob(digest: string): Uint8Array {
    try {
      return readFileSync(this.blobPath(digest));
    } catch (err) {
      throw fromNodeError(err, `read blob ${digest} from the store`);
    }
  }

  /** Create the store's directories (mode 0700: layers hold set-id files and devices). */
  init(): void {
    try {
      mkdirSync(this.root, { recursive: true, mode: 0o700 });
      for (const dir of [this.blobDir, this.layerDir, this.tmpDir]) mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw fromNodeError(err, `create the image store ${this.root}`);
    }
  }

  /**
   * Run `fn` holding the store's lock (waiting for another dokrust to
   * finish), after removing what a killed import left in tmp/.
   */
  async locked<T>(fn: () => Promise<T>): Promise<T> {
    this.init();
    const { tryLock, closeFd } = await import("../native/libc.ts");
    const fd = openSync(`${this.root}/lock`, "a", 0o600);
    try {
      let waited = false;
      while (!tryLock(fd)) {
        if (!waited && process.stderr.isTTY) process.stderr.write("dokrust: waiting for another dokrust to finish with the image store\n");
        waited = true;
        await Bun.sleep(50);
      }
      for (const entry of readdirSync(this.tmpDir)) rmSync(`${this.tmpDir}/${entry}`, { recursive: true, force: true });
      return await fn();
    } finally {
      closeFd(fd);
    }
  }

  /** A fresh directory in tmp/ (call under the lock). */
  tempDir(): string {
    const dir = `${this.tmpDir}/${randomBytes(8).toString("hex")}`;
    mkdirSync(dir, { mode: 0o700 });
    return dir;
  }

  /** Every image record, by name. */
  records(): Record<string, ImageRecord> {
    let text: string;
    try {
      text = readFileSync(`${this.root}/images.json`, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
      throw fromNodeError(err, "read the image list");
    }
    try {
      return (JSON.parse(text) as RecordsFile).images ?? {};
    } catch {
      throw new DokrustError(`${this.root}/images.json: not valid JSON (the image list is damaged)`);
    }
  }

  /** The record of `name`; throws a one-line error when there is none. */
  get(name: string): ImageRecord {
    const record = this.records()[name];
    if (!record) throw new DokrustError(`image ${name}: no such image (see dokrust image ls)`);
    return record;
  }

  /** Replace the records (call under the lock). */
  saveRecords(images: Record<string, ImageRecord>): void {
    const file: RecordsFile = { version: 1, images };
    writeAtomic(`${this.root}/images.json`, `${JSON.stringify(file, null, 2)}\n`);
  }

  /** Move a finished blob file into blobs/ (call under the lock). */
  commitBlob(file: string, digest: string): void {
    if (this.hasBlob(digest)) {
      rmSync(file, { force: true });
      return;
    }
    renameSync(file, this.blobPath(digest));
  }

  /** Move a finished layer directory into layers/ (call under the lock). */
  commitLayer(dir: string, diffId: string): void {
    if (this.hasLayer(diffId)) {
      rmSync(dir, { recursive: true, force: true });
      return;
    }
    renameSync(dir, this.layerPath(diffId));
  }

  /**
   * Remove blobs and layers no image refers to (call under the lock).
   * Returns how many of each went.
   */
  collect(): { blobs: number; layers: number } {
    const records = Object.values(this.records());
    const blobs = new Set<string>();
    const layers = new Set<string>();
    for (const r of records) {
      blobs.add(hexOf(r.id));
      blobs.add(hexOf(r.manifest));
      for (const l of r.layers) layers.add(hexOf(l));
    }
    let removedBlobs = 0;
    let removedLayers = 0;
    for (const hex of readdirSync(this.blobDir)) {
      if (blobs.has(hex)) continue;
      rmSync(`${this.blobDir}/${hex}`, { force: true });
      removedBlobs++;
    }
    for (const hex of readdirSync(this.layerDir)) {
      if (layers.has(hex)) continue;
      // Rename first: a layer half-removed must never look whole.
      const doomed = `${this.tmpDir}/gc-${hex}`;
      renameSync(`${this.layerDir}/${hex}`, doomed);
      rmSync(doomed, { recursive: true, force: true });
      removedLayers++;
    }
    return { blobs: removedBlobs, layers: removedLayers };
  }
}
