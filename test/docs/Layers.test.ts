/**
 * The README's layout table, checked: imports only go down it. Every `import … from` and
 * `import()` of every module under src/ is read; a module that reaches up (or into another
 * layer's `internal/`) fails with its name and the import.
 */
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const src = fileURLToPath(new URL("../../src", import.meta.url))

/** The folders of src/ each folder may import, besides itself. */
const allowed: Record<string, ReadonlyArray<string>> = {
  actors: [],
  supervisors: ["actors"],
  node: ["actors"],
  protocol: ["actors"],
  store: ["actors", "node", "protocol"],
  client: ["protocol"],
  links: ["actors", "supervisors", "node", "protocol", "store"],
  http: ["actors", "supervisors", "node", "protocol", "store", "client"],
  apps: ["actors", "supervisors", "node", "protocol", "store", "links", "http"],
  cluster: ["actors", "node"],
  cli: ["actors", "supervisors", "node", "protocol", "store", "client", "links", "http", "apps", "cluster", "main.ts"],
  "main.ts": ["actors", "supervisors", "node", "protocol", "store", "client", "links", "http", "apps", "cluster"]
}

const modules = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return modules(full)
    return /\.(ts|mts|js|mjs)$/.test(entry.name) ? [full] : []
  })

const importsOf = (file: string): Array<string> => {
  const text = fs.readFileSync(file, "utf8")
  const found: Array<string> = []
  for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^"'`;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)) {
    found.push(match[1] ?? match[2])
  }
  return found
}

/** The top folder of src/ a path is in (or `main.ts`). */
const layerOf = (file: string) => path.relative(src, file).split(path.sep)[0].replace(/\.js$/, ".ts")

const violations = () => {
  const found: Array<string> = []
  for (const file of modules(src)) {
    const from = layerOf(file)
    for (const specifier of importsOf(file)) {
      if (!specifier.startsWith(".")) continue
      const target = path.resolve(path.dirname(file), specifier)
      if (!target.startsWith(src + path.sep)) {
        found.push(`${path.relative(src, file)} imports ${specifier}, outside src/`)
        continue
      }
      const to = layerOf(target)
      if (to === from) continue
      if (!(allowed[from] ?? []).includes(to)) {
        found.push(`${path.relative(src, file)} imports ${specifier} (${from} → ${to})`)
      } else if (target.split(path.sep).includes("internal")) {
        found.push(`${path.relative(src, file)} imports ${specifier}, another layer's internals`)
      }
    }
  }
  return found
}

describe("layers", () => {
  it("every folder of src/ is in the table", () => {
    expect(fs.readdirSync(src).filter((name) => allowed[name] === undefined)).toEqual([])
  })

  it("imports only go down the table, and never into another layer's internals", () => {
    expect(violations()).toEqual([])
  })
})
