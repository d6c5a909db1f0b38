/**
 * Bundles a page's TypeScript entry into one browser script with esbuild, on demand: the
 * gateway serves `bundle("web/canvas/main.ts")` as `/canvas/main.js`, so pages need no build step,
 * neither before `npm start` nor in the compiled service (`dist/`), which ships `web/` beside it.
 * Each entry is bundled once per process; a failed bundle is not cached.
 *
 * @since 0.1.0
 */
import * as esbuild from "esbuild"
import * as path from "node:path"

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
