import { describe, expect, test } from "bun:test";
import { defaultSpec } from "../../src/spec/defaults.ts";
import { generate, GENERATED } from "../../src/spec/gen-validator.ts";
import { validateSpec } from "../../src/spec/load.ts";

async function errorOf(data: unknown): Promise<string> {
  try {
    await validateSpec(data);
  } catch (err) {
    return (err as Error).message;
  }
  return "";
}

function withPatch(patch: (s: Record<string, any>) => void): unknown {
  const spec = defaultSpec() as unknown as Record<string, any>;
  patch(spec);
  return spec;
}

describe("config.json validation", () => {
  test("validateSpec() accepts the default spec", async () => {
    expect(await errorOf(defaultSpec())).toBe("");
  });

  test("validateSpec() ignores unknown fields and annotations", async () => {
    expect(await errorOf(withPatch((s) => {
      s.vendorThing = { x: 1 };
      s.process.futureField = true;
      s.annotations = { "a.b": "c" };
    }))).toBe("");
  });

  test("validateSpec() names the field with the wrong type", async () => {
    expect(await errorOf(withPatch((s) => (s.process.user.uid = "0")))).toBe("config.json: /process/user/uid must be integer");
    expect(await errorOf(withPatch((s) => (s.hostname = 3)))).toBe("config.json: /hostname must be string");
  });

  test("validateSpec() names missing required fields", async () => {
    expect(await errorOf({})).toBe("config.json: / must have required property 'ociVersion'");
    expect(await errorOf(withPatch((s) => delete s.process.cwd))).toBe("config.json: /process must have required property 'cwd'");
  });

  test("validateSpec() lists the allowed values of an enumeration", async () => {
    const message = await errorOf(withPatch((s) => (s.linux.namespaces = [{ type: "pidd" }])));
    expect(message).toStartWith("config.json: /linux/namespaces/0/type must be equal to one of the allowed values");
    expect(message).toContain('"pid"');
  });

  test("validateSpec() checks hooks, mappings and seccomp", async () => {
    expect(await errorOf(withPatch((s) => (s.hooks = { poststart: [{ path: "relative" }] })))).toBe(
      'config.json: /hooks/poststart/0/path must match pattern "^/"',
    );
    expect(await errorOf(withPatch((s) => (s.linux.uidMappings = [{ containerID: 0, hostID: -1, size: 1 }])))).toBe(
      "config.json: /linux/uidMappings/0/hostID must be >= 0",
    );
    expect(await errorOf(withPatch((s) => (s.linux.seccomp = { defaultAction: "SCMP_ACT_NOPE" })))).toContain("/linux/seccomp/defaultAction");
  });

  test("the generated validator is up to date with schema.ts", async () => {
    expect(await Bun.file(GENERATED).text()).toBe(generate());
  });
});
