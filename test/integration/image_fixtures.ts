/**
 * Images for the image tests, made by standard tools from the busybox
 * fixture: an OCI layout of two layers by umoci (the second deletes a
 * file and a directory, so it holds whiteouts, and adds a hard link),
 * an oci-archive and a docker-archive of it by skopeo, root file system
 * tarballs by GNU tar (plain, gzip, zstd, xz), and small hand-made
 * layouts for the bad-input cases.  Plus a docker-registry on loopback.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { BUSYBOX } from "./helpers.ts";

/** Run a command; throw with its stderr when it fails. */
export function run(argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: exit ${r.exitCode}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

export const haveImageTools = ["umoci", "skopeo", "tar", "zstd", "xz", "gzip"].every((t) => Bun.which(t) !== null);
export const haveRegistry = Bun.which("docker-registry") !== null;

export interface Fixtures {
  layout: string;
  ociArchive: string;
  dockerArchive: string;
  tarballs: Record<"none" | "gzip" | "zstd" | "xz", string>;
  /** umoci's own unpacking of the layout: what the image's root must look like. */
  unpacked: string;
}

/** Build every fixture image under `dir`. */
export function buildFixtures(dir: string): Fixtures {
  const layout = `${dir}/oci`;
  const bundle = `${dir}/bundle`;
  run(["umoci", "init", "--layout", layout]);
  run(["umoci", "new", "--image", `${layout}:demo`]);
  run(["umoci", "unpack", "--image", `${layout}:demo`, bundle]);
  const root = `${bundle}/rootfs`;
  run(["cp", "-a", `${BUSYBOX}/.`, root]);
  mkdirSync(`${root}/data/sub`, { recursive: true });
  mkdirSync(`${root}/gone`);
  writeFileSync(`${root}/data/sub/a`, "a\n");
  writeFileSync(`${root}/gone/f`, "old\n");
  writeFileSync(`${root}/etc/deleted`, "x\n");
  run(["umoci", "repack", "--refresh-bundle", "--image", `${layout}:demo`, bundle]);
  run(["rm", "-rf", `${root}/gone`, `${root}/etc/deleted`, `${root}/data/sub`]);
  writeFileSync(`${root}/data/b`, "new\n");
  writeFileSync(`${root}/etc/h1`, "hard\n");
  run(["ln", `${root}/etc/h1`, `${root}/etc/h2`]);
  run(["umoci", "repack", "--image", `${layout}:demo`, bundle]);
  run([
    "umoci", "config", "--image", `${layout}:demo`,
    "--config.entrypoint", "/bin/sh", "--config.cmd", "-c", "--config.cmd", "echo from-cmd; id; pwd; echo FOO=$FOO",
    "--config.env", "FOO=bar", "--config.workingdir", "/data", "--config.user", "65534",
    "--config.exposedports", "8080/tcp",
  ]);
  const unpacked = `${dir}/unpacked`;
  run(["umoci", "unpack", "--image", `${layout}:demo`, unpacked]);
  const ociArchive = `${dir}/demo-oci.tar`;
  const dockerArchive = `${dir}/demo-docker.tar`;
  run(["skopeo", "copy", "-q", `oci:${layout}:demo`, `oci-archive:${ociArchive}:demo`]);
  run(["skopeo", "copy", "-q", `oci:${layout}:demo`, `docker-archive:${dockerArchive}:demo:1`]);
  const plain = `${dir}/rootfs.tar`;
  run(["tar", "--numeric-owner", "-C", BUSYBOX, "-cf", plain, "."]);
  run(["sh", "-c", `gzip -c ${plain} > ${plain}.gz && zstd -q -c ${plain} > ${plain}.zst && xz -c ${plain} > ${plain}.xz`]);
  return {
    layout,
    ociArchive,
    dockerArchive,
    tarballs: { none: plain, gzip: `${plain}.gz`, zstd: `${plain}.zst`, xz: `${plain}.xz` },
    unpacked: `${unpacked}/rootfs`,
  };
}

function digestOf(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** Store a blob in a layout; returns its descriptor. */
function putBlob(layout: string, bytes: Uint8Array, mediaType: string): { mediaType: string; digest: string; size: number } {
  const digest = digestOf(bytes);
  writeFileSync(`${layout}/blobs/sha256/${digest.slice(7)}`, bytes);
  return { mediaType, digest, size: bytes.length };
}

export interface LayoutOptions {
  layerMediaType?: string;
  /** Replace the config's diff_ids. */
  diffIds?: string[];
  /** Put this many more manifests of other platforms in the index. */
  otherPlatforms?: boolean;
}

/** A hand-made OCI layout of one uncompressed layer (the tar `layer`). */
export function writeLayout(layout: string, layer: Uint8Array, options: LayoutOptions = {}): { layerDigest: string } {
  mkdirSync(`${layout}/blobs/sha256`, { recursive: true });
  writeFileSync(`${layout}/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
  const layerDesc = putBlob(layout, layer, options.layerMediaType ?? "application/vnd.oci.image.layer.v1.tar");
  const config = {
    architecture: "amd64",
    os: "linux",
    config: { Cmd: ["/bin/sh"] },
    rootfs: { type: "layers", diff_ids: options.diffIds ?? [digestOf(layer)] },
  };
  const configDesc = putBlob(layout, Buffer.from(JSON.stringify(config)), "application/vnd.oci.image.config.v1+json");
  const manifest = { schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config: configDesc, layers: [layerDesc] };
  const manifestDesc = putBlob(layout, Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
  const index = { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [manifestDesc] };
  writeFileSync(`${layout}/index.json`, JSON.stringify(index));
  return { layerDigest: layerDesc.digest };
}

/**
 * Rewrite a layout's index.json to point at a nested index listing its
 * manifest for linux/amd64 and a bogus one for linux/arm64 (a
 * multi-platform image, as registries serve manifest lists).
 */
export function makeMultiPlatform(layout: string): void {
  const index = JSON.parse(readFileSync(`${layout}/index.json`, "utf8")) as { manifests: Array<{ mediaType: string; digest: string; size: number }> };
  const { mediaType, digest, size } = index.manifests[0]!;
  const real = { mediaType, digest, size, platform: { architecture: "amd64", os: "linux" } };
  // The other platform's manifest: the same blobs, told apart by an annotation.
  const manifest = JSON.parse(readFileSync(`${layout}/blobs/sha256/${String(real.digest).slice(7)}`, "utf8")) as Record<string, unknown>;
  const other = Buffer.from(JSON.stringify({ ...manifest, annotations: { "dokrust-test.platform": "arm64" } }));
  const bogus = putBlob(layout, other, "application/vnd.oci.image.manifest.v1+json");
  const nested = { schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [{ ...bogus, platform: { architecture: "arm64", os: "linux" } }, real] };
  const nestedDesc = putBlob(layout, Buffer.from(JSON.stringify(nested)), nested.mediaType);
  const top = { schemaVersion: 2, manifests: [{ ...nestedDesc, annotations: { "org.opencontainers.image.ref.name": "multi" } }] };
  writeFileSync(`${layout}/index.json`, JSON.stringify(top));
}

/** A TCP port free on 127.0.0.1 just now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** A docker-registry listening on 127.0.0.1, storing in `dir`. */
export async function startRegistry(dir: string): Promise<{ address: string; stop: () => void }> {
  const port = await freePort();
  mkdirSync(`${dir}/data`, { recursive: true });
  writeFileSync(
    `${dir}/config.yml`,
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const proc = Bun.spawn(["docker-registry", "serve", `${dir}/config.yml`], { stdout: "ignore", stderr: "pipe" });
  const address = `127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      if ((await fetch(`http://${address}/v2/`)).ok) break;
    } catch {
      // not listening yet
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`docker-registry did not start on ${address}`);
    }
    await Bun.sleep(50);
  }
  return { address, stop: () => proc.kill("SIGKILL") };
}

/**
 * A token-protected front of the registry: 401 with a Bearer challenge
 * unless the request carries the token its /token endpoint hands out.
 */
export function startTokenProxy(registry: string): { address: string; tokensIssued: () => number; stop: () => void } {
  const token = "dokrust-test-token";
  let issued = 0;
  const server: ReturnType<typeof Bun.serve> = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request): Promise<Response> {
      const url = new URL(request.url);
      if (url.pathname === "/token") {
        if (url.searchParams.get("service") !== "dokrust-test" || !url.searchParams.get("scope")?.startsWith("repository:")) {
          return new Response("bad token request", { status: 400 });
        }
        issued++;
        return Response.json({ token });
      }
      if (request.headers.get("authorization") !== `Bearer ${token}`) {
        const realm: string = `http://127.0.0.1:${server.port}/token`;
        return new Response('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', {
          status: 401,
          headers: { "www-authenticate": `Bearer realm="${realm}",service="dokrust-test",scope="repository:demo:pull"` },
        });
      }
      const upstream = await fetch(`http://${registry}${url.pathname}${url.search}`, { headers: { accept: request.headers.get("accept") ?? "*/*" } });
      return new Response(upstream.body, { status: upstream.status, headers: upstream.headers });
    },
  });
  return { address: `127.0.0.1:${server.port}`, tokensIssued: () => issued, stop: () => server.stop(true) };
}
