/**
 * Files of a directory served under a path prefix (the admin page). Only names inside the
 * directory are served; an unknown one is a 404.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Route from "./Route.js"

const types: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json; charset=utf-8"
}

/** Serves `directory` at `prefix/*`; the prefix itself serves `index.html`. Public: a page's files hold no data. */
export const route = (prefix: string, directory: string): Route.Route =>
  Route.make("GET", `${prefix}/*`, async (request, response, url) => {
    if (url.pathname === prefix) {
      response.writeHead(301, { location: `${prefix}/` })
      return void response.end()
    }
    let relative: string
    try {
      relative = decodeURIComponent(url.pathname.slice(prefix.length)).replace(/^\/+/, "") || "index.html"
    } catch {
      return Route.text(response, 404, "Not found\n")
    }
    const file = path.resolve(directory, relative)
    if (!file.startsWith(path.resolve(directory) + path.sep)) return Route.text(response, 404, "Not found\n")
    let body: Buffer
    try {
      body = await fs.readFile(file)
    } catch {
      return Route.text(response, 404, "Not found\n")
    }
    response.writeHead(200, {
      "content-type": types[path.extname(file)] ?? "application/octet-stream",
      "content-length": body.length,
      "cache-control": "no-cache"
    })
    response.end(request.method === "HEAD" ? undefined : body)
  }, { access: "public" })
