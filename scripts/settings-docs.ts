/**
 * `npm run docs:settings`: writes the table of every setting (variable, flag, default, meaning)
 * into docs/service.md and README.md, between their `settings` markers, from the declarations
 * (`Setting`) of the gateway, the canvas and the fleet. test/docs/SettingsDoc.test.ts fails when
 * a page's table is not the one this would write.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { allSettings } from "../src/main.js"
import * as Setting from "../src/node/Setting.js"

const root = fileURLToPath(new URL("..", import.meta.url))

/** The line before a generated table. */
export const begin = "<!-- settings: written by `npm run docs:settings` from the declarations in src/; edit those, not this table -->"
/** The line after it. */
export const end = "<!-- /settings -->"

/** The pages with a table of the settings, and where their links go from docs/ (the help texts link as docs/service.md does). */
const pages: ReadonlyArray<{ readonly file: string; readonly relink: (target: string) => string }> = [
  { file: "docs/service.md", relink: (target) => target },
  {
    file: "README.md",
    relink: (target) =>
      /^[a-z]+:/.test(target) ? target : target.startsWith("#") ? `docs/service.md${target}` : `docs/${target}`
  }
]

/** `text` with the table between its markers replaced by `table`. */
const withTable = (file: string, text: string, table: string): string => {
  const from = text.indexOf(begin)
  const to = text.indexOf(end, from)
  if (from < 0 || to < 0) throw new Error(`${file} has no settings markers (${begin} … ${end})`)
  return `${text.slice(0, from + begin.length)}\n${table}\n${text.slice(to)}`
}

/** Each page: its text now, and as `npm run docs:settings` writes it. */
export const documents = (): ReadonlyArray<{ readonly file: string; readonly current: string; readonly expected: string }> =>
  pages.map(({ file, relink }) => {
    const current = fs.readFileSync(path.join(root, file), "utf8")
    return { file, current, expected: withTable(file, current, Setting.markdownTable(allSettings, relink)) }
  })

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  for (const { current, expected, file } of documents()) {
    if (current === expected) continue
    fs.writeFileSync(path.join(root, file), expected)
    process.stdout.write(`${file}: settings table written\n`)
  }
}
