// Module hooks of productionOnly.mjs: a resolved file inside a node_modules package that is not in
// the allowed list is refused, as it would be missing from a production installation.
import * as fs from "node:fs"
import { fileURLToPath } from "node:url"

let allowed = new Set()

export const initialize = (data) => {
  allowed = new Set(data.allowed.map((folder) => fs.realpathSync(folder)))
}

/** The package folder of a file inside node_modules, or undefined. */
const packageOf = (file) => {
  const match = /^(.*\/node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(file)
  return match?.[1]
}

export const resolve = async (specifier, context, next) => {
  const resolved = await next(specifier, context)
  if (resolved.url.startsWith("file:")) {
    const folder = packageOf(fs.realpathSync(fileURLToPath(resolved.url)))
    if (folder !== undefined && !allowed.has(folder)) {
      throw new Error(`${specifier} (${folder}) is not installed in production (a dev dependency?)`)
    }
  }
  return resolved
}
