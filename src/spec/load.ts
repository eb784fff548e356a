/**
 * Reading a bundle's config.json: parse, then validate against the schema
 * (src/spec/schema.ts).  The validator is ajv's standalone code generated
 * ahead of time (src/spec/gen-validator.ts): compiling the schema with ajv
 * at run time costs ~80 ms, loading the generated module about 1 ms.  It
 * is imported on first use, so commands that never read a config.json
 * never load it.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { DokrustError, UsageError } from "../errors.ts";
import type { Spec } from "./types.ts";

type Validator = ((data: unknown) => boolean) & {
  errors?: Array<{ instancePath: string; message?: string; params?: Record<string, unknown> }> | null;
};

let validator: Validator | undefined;

async function compiled(): Promise<Validator> {
  if (validator) return validator;
  const generated = (await import("./config-validator.gen.ts")) as { validate: Validator };
  validator = generated.validate;
  return validator;
}

/** The first schema error, worded "/path/to/field must be ...". */
function describe(v: Validator): string {
  const e = v.errors?.[0];
  if (!e) return "invalid";
  const where = e.instancePath || "/";
  const allowed = e.params && "allowedValues" in e.params ? ` (${(e.params.allowedValues as unknown[]).map((x) => JSON.stringify(x)).join(", ")})` : "";
  return `${where} ${e.message ?? "is invalid"}${allowed}`;
}

/** Validate a parsed config; throws a UsageError naming the field. */
export async function validateSpec(data: unknown, label = "config.json"): Promise<Spec> {
  const v = await compiled();
  if (!v(data)) throw new UsageError(`${label}: ${describe(v)}`);
  const { checkSpec } = await import("./sanity.ts");
  try {
    checkSpec(data as Spec);
  } catch (err) {
    throw err instanceof UsageError ? new UsageError(`${label}: ${err.message}`) : err;
  }
  return data as Spec;
}

/** Load and validate `<bundle>/config.json`. */
export async function loadBundleSpec(bundle: string): Promise<{ bundle: string; spec: Spec }> {
  const dir = resolve(bundle);
  const file = `${dir}/config.json`;
  let text: string;
  try {
    // invalid UTF-8 is refused, not replaced with U+FFFD behind the user's back
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(readFileSync(file));
  } catch (err) {
    if (err instanceof TypeError) throw new UsageError(`config.json: not valid UTF-8`);
    const code = (err as NodeJS.ErrnoException).code;
    throw new DokrustError(code === "ENOENT" ? `${file}: no such file (is ${dir} a bundle?)` : `read ${file}: ${code}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`config.json: not valid JSON: ${(err as Error).message}`);
  }
  return { bundle: dir, spec: await validateSpec(data) };
}
