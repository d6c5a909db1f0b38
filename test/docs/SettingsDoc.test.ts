import { describe, expect, it } from "vitest"
import { documents } from "../../scripts/settings-docs.js"

describe("the settings tables of the docs", () => {
  it("are the ones the declarations make (run `npm run docs:settings` after changing a setting)", () => {
    const pages = documents()
    expect(pages.map((page) => page.file)).toEqual(["docs/service.md", "README.md"])
    for (const page of pages) expect(page.current, `${page.file} is out of date: npm run docs:settings`).toBe(page.expected)
  })
})
