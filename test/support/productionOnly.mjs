// `node --import ./test/support/productionOnly.mjs …`: the process (and its worker threads, which
// inherit the flag) may import only the packages an `npm ci --omit=dev` installation has. The
// allowed package folders come from `npm ls --omit=dev --all --parseable`, in
// FLEETVISOR_PRODUCTION_PACKAGES (one per line); importing any other package fails.
import { register } from "node:module"

register("./productionOnlyHooks.mjs", import.meta.url, {
  data: { allowed: (process.env.FLEETVISOR_PRODUCTION_PACKAGES ?? "").split("\n").filter((line) => line !== "") }
})
