/**
 * Bundles a page's TypeScript entry into one browser script with esbuild, on demand: the
 * gateway serves `bundle("web/canvas/main.ts")` as `/canvas/main.js`, so pages need no build step,
 * neither before `npm start` nor in the compiled service (`dist/`), which ships `web/` beside it.
 * Each entry is bundled once per process; a failed bundle is not cached.
 *
 * @since 0.1.0
 */
import * as esbuild from "esbuild"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Route from "./Route.js"

const bundles = new Map<string, Promise<string>>()

/** Options of every bundle: an ES module for current browsers, minified. */
const buildOptions = {
  bundle: true,
  write: false,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  legalComments: "none",
  logLevel: "silent"
} as const satisfies esbuild.BuildOptions

/** The browser script of `entryPath` (a `.ts` file), bundled with its imports; cached per path. */
export const bundle = (entryPath: string): Promise<string> => {
  const entry = path.resolve(entryPath)
  let cached = bundles.get(entry)
  if (cached === undefined) {
    cached = esbuild.build({ ...buildOptions, entryPoints: [entry] }).then((result) => result.outputFiles[0].text)
    cached.catch(() => bundles.delete(entry))
    bundles.set(entry, cached)
  }
  return cached
}

/**
 * The routes of a page `<root>/web/<name>/`: its `index.html` at `/<name>/`, and its script
 * `main.ts` bundled on first request at `/<name>/main.js`. Both are public (the page asks for its
 * credential itself).
 */
export const routes = (root: string, name: string): ReadonlyArray<Route.Route> => [
  Route.make("GET", `/${name}/main.js`, async (_, response) => {
    const script = await bundle(`${root}/web/${name}/main.ts`)
    response.writeHead(200, {
      "content-type": "text/javascript; charset=utf-8",
      "content-length": Buffer.byteLength(script),
      "cache-control": "no-cache"
    })
    response.end(script)
  }, { access: "public" }),
  Route.make("GET", `/${name}/*`, async (request, response, url) => {
    if (url.pathname === `/${name}`) {
      response.writeHead(301, { location: `/${name}/` })
      return void response.end()
    }
    if (url.pathname !== `/${name}/`) return Route.text(response, 404, "Not found\n")
    const page = await fs.promises.readFile(`${root}/web/${name}/index.html`)
    response.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": page.length })
    response.end(request.method === "HEAD" ? undefined : page)
  }, { access: "public" })
]

/** The package's root folder (where `web/` is), from `src/http` and from `dist/http` alike. */
export const packageRoot = fileURLToPath(new URL("../..", import.meta.url))
