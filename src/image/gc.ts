/**
 * Removing images: the record goes, then every blob and layer no image
 * refers to any more.  An image a running container was made from is
 * refused (the runtime leaves an `image` file in the container's state
 * directory), unless forced.
 */
import { DokrustError } from "../errors.ts";
import { imageUsers } from "./rootfs.ts";
import type { ImageStore } from "./store.ts";

/** Remove the images `names`; returns the names removed. */
export async function removeImages(store: ImageStore, names: string[], force: boolean): Promise<string[]> {
  return store.locked(async () => {
    const records = store.records();
    for (const name of names) {
      if (!records[name]) throw new DokrustError(`image rm ${name}: no such image`);
      const users = imageUsers(store, name);
      if (users.length && !force) {
        throw new DokrustError(`image rm ${name}: in use by ${users.length} running container${users.length > 1 ? "s" : ""} (${users[0]}); stop ${users.length > 1 ? "them" : "it"} first or use --force`);
      }
    }
    for (const name of names) delete records[name];
    store.saveRecords(records);
    store.collect();
    return names;
  });
}
