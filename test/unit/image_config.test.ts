/**
 * The pure parts of the image code: image config → run defaults, users
 * from the image's /etc/passwd, references, WWW-Authenticate challenges,
 * compression magic, OCI document checks, the overlay mount step.
 */
import { describe, expect, test } from "bun:test";
import { applyImageConfig, resolveUser } from "../../src/image/defaults.ts";
import { detectCompression } from "../../src/image/compression.ts";
import { checkManifest, MEDIA } from "../../src/image/oci.ts";
import { parseChallenge } from "../../src/image/pull.ts";
import { isLocalRegistry, parseReference } from "../../src/image/reference.ts";
import { overlayOptions } from "../../src/image/rootfs.ts";
import { checkImageName } from "../../src/image/store.ts";
import { compilePlan } from "../../src/plan/compile.ts";
import { CloneMode, Op } from "../../src/plan/ops.ts";
import type { Spec } from "../../src/spec/types.ts";

const files = {
  passwd: "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/var/www:/bin/false\n",
  group: "root:x:0:\nstaff:x:50:\n",
};

describe("resolveUser()", () => {
  test("a name from /etc/passwd, with its primary group", () => {
    expect(resolveUser("www", files)).toEqual({ uid: 33, gid: 34 });
  });
  test("name:group and uid:gid", () => {
    expect(resolveUser("www:staff", files)).toEqual({ uid: 33, gid: 50 });
    expect(resolveUser("1000:1001", files)).toEqual({ uid: 1000, gid: 1001 });
  });
  test("a numeric uid the image does not list gets gid 0", () => {
    expect(resolveUser("4242", files)).toEqual({ uid: 4242, gid: 0 });
  });
  test("an unknown name or group is an error", () => {
    expect(() => resolveUser("nobody", files)).toThrow("no user nobody in the image's /etc/passwd");
    expect(() => resolveUser("www:wheel", files)).toThrow("no group wheel");
  });
});

describe("applyImageConfig()", () => {
  const config = { Entrypoint: ["/entry"], Cmd: ["--serve"], Env: ["PATH=/img/bin", "A=1"], WorkingDir: "/app", User: "www" };

  test("no command: Entrypoint + Cmd, and the image's env, workdir, user", () => {
    expect(applyImageConfig({ args: [], shell: false, env: [] }, config, files)).toEqual({
      args: ["/entry", "--serve"],
      env: ["PATH=/img/bin", "A=1"],
      workdir: "/app",
      user: { uid: 33, gid: 34 },
    });
  });

  test("a command replaces Cmd and follows the Entrypoint; -e, -w, -u win", () => {
    const run = applyImageConfig({ args: ["--debug"], shell: false, env: ["A=2"], workdir: "/", user: { uid: 0, gid: 0 } }, config, files);
    expect(run).toEqual({ args: ["/entry", "--debug"], env: ["PATH=/img/bin", "A=1", "A=2"], workdir: "/", user: { uid: 0, gid: 0 } });
  });

  test("-c runs its shell command without the Entrypoint", () => {
    const run = applyImageConfig({ args: ["/bin/sh", "-c", "id"], shell: true, env: [] }, config, files);
    expect(run.args).toEqual(["/bin/sh", "-c", "id"]);
  });

  test("nothing to run is an error", () => {
    expect(() => applyImageConfig({ args: [], shell: false, env: [] }, {}, files)).toThrow("neither Entrypoint nor Cmd");
  });
});

describe("parseReference()", () => {
  test("registry, repository, tag", () => {
    expect(parseReference("127.0.0.1:5000/demo:1")).toEqual({ registry: "127.0.0.1:5000", repository: "demo", reference: "1", byDigest: false });
    expect(parseReference("localhost/a/b")).toEqual({ registry: "localhost", repository: "a/b", reference: "latest", byDigest: false });
  });
  test("Docker Hub names", () => {
    expect(parseReference("alpine")).toMatchObject({ registry: "registry-1.docker.io", repository: "library/alpine", reference: "latest" });
    expect(parseReference("user/app:v2")).toMatchObject({ repository: "user/app", reference: "v2" });
  });
  test("by digest", () => {
    const digest = `sha256:${"a".repeat(64)}`;
    expect(parseReference(`127.0.0.1:5000/demo@${digest}`)).toMatchObject({ reference: digest, byDigest: true });
  });
  test("malformed references", () => {
    expect(() => parseReference("Upper/Case")).toThrow("image reference");
    expect(() => parseReference("demo@sha256:12")).toThrow("the digest must be");
  });
  test("loopback registries are local", () => {
    expect(isLocalRegistry("127.0.0.1:5000")).toBe(true);
    expect(isLocalRegistry("localhost")).toBe(true);
    expect(isLocalRegistry("[::1]:5000")).toBe(true);
    expect(isLocalRegistry("registry.example:5000")).toBe(false);
  });
});

test("parseChallenge() reads a bearer challenge", () => {
  const c = parseChallenge('Bearer realm="http://127.0.0.1:9/token",service="reg",scope="repository:demo:pull"');
  expect(c).toEqual({ scheme: "bearer", params: { realm: "http://127.0.0.1:9/token", service: "reg", scope: "repository:demo:pull" } });
  expect(parseChallenge('Basic realm="x"').scheme).toBe("basic");
});

test("detectCompression() goes by magic bytes", () => {
  expect(detectCompression(new Uint8Array([0x1f, 0x8b, 8]))).toBe("gzip");
  expect(detectCompression(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd]))).toBe("zstd");
  expect(detectCompression(new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]))).toBe("xz");
  expect(detectCompression(new TextEncoder().encode("bin/\0\0"))).toBe("none");
});

test("checkManifest() refuses an unknown layer media type", () => {
  const d = (mediaType: string) => ({ mediaType, digest: `sha256:${"b".repeat(64)}`, size: 1 });
  const manifest = { schemaVersion: 2, config: d(MEDIA.ociConfig), layers: [d("application/x-mystery")] };
  expect(() => checkManifest(manifest, "m")).toThrow("unknown layer media type application/x-mystery");
  expect(() => checkManifest({ ...manifest, mediaType: "application/x-other" }, "m")).toThrow("unknown manifest media type");
});

test("checkImageName() takes references and refuses the rest", () => {
  expect(checkImageName("127.0.0.1:5000/demo:1")).toBe("127.0.0.1:5000/demo:1");
  expect(() => checkImageName(undefined)).toThrow("an image name is required");
  expect(() => checkImageName("../x")).toThrow("image name");
});

test("overlayOptions() refuses paths overlayfs cannot parse", () => {
  expect(overlayOptions({ lower: ["/l2", "/l1"], upper: "/u", work: "/w" })).toBe("lowerdir=/l2:/l1,upperdir=/u,workdir=/w");
  expect(() => overlayOptions({ lower: ["/a,b"], upper: "/u", work: "/w" })).toThrow("cannot appear");
});

test("compilePlan() mounts the overlay on the root before binding it", () => {
  const spec: Spec = {
    ociVersion: "1.2.0",
    process: { args: ["/bin/sh"], cwd: "/", user: { uid: 0, gid: 0 } },
    root: { path: "/r" },
    linux: { namespaces: [{ type: "mount" }] },
  };
  const steps = compilePlan(spec, {
    rootfs: "/r",
    base: "/",
    isDirectory: () => true,
    cgroupProcs: [],
    cloneMode: CloneMode.WAIT,
    preserveFds: 0,
    overlayRoot: { lower: ["/l2", "/l1"], upper: "/u", work: "/w" },
  });
  const mounts = steps.filter((s) => s.op === Op.MOUNT);
  expect(mounts[1]!.args).toEqual(["overlay", "/r", "overlay", 0, "lowerdir=/l2:/l1,upperdir=/u,workdir=/w", 0]);
  expect(mounts[2]!.args.slice(0, 2)).toEqual(["/r", "/r"]);
});
