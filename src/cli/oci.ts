import { DokrustError } from "../errors.ts";
export async function runOci(argv: string[]): Promise<number> {
  throw new DokrustError(`${argv[0]}: not implemented yet`);
}
