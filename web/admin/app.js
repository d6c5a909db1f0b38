// The actor tree page: reads /admin/actors/stream (Server-Sent Events) and redraws the tree on
// every event. fetch() rather than EventSource, so that the bearer token can go in a header.
const treeElement = document.getElementById("tree")
const stateElement = document.getElementById("state")
const nodeElement = document.getElementById("node")
const login = document.getElementById("login")
const maxChildren = 200
document.getElementById("limit").textContent = String(maxChildren)

let previous = new Map()

const setState = (text, cls) => {
  stateElement.textContent = text
  stateElement.className = `badge ${cls}`
}

const element = (tag, cls, text) => {
  const e = document.createElement(tag)
  if (cls) e.className = cls
  if (text !== undefined) e.textContent = text
  return e
}

const drawNode = (node, seen) => {
  const li = element("li")
  const line = element("span", "node")
  line.append(element("span", "name", node.name))
  if (node.label) line.append(element("span", "label", `(${node.label})`))
  line.append(element("span", `badge ${node.status}`, node.status))
  line.append(element("span", `mailbox${node.mailbox > 0 ? " busy" : ""}`, `mailbox=${node.mailbox}`))
  line.append(element("span", `restarts${node.restarts > 0 ? " some" : ""}`, `restarts=${node.restarts}`))
  const key = `${node.name}`
  const summary = `${node.status}/${node.mailbox}/${node.restarts}/${node.label ?? ""}`
  if (previous.has(key) && previous.get(key) !== summary) line.classList.add("changed")
  seen.set(key, summary)
  li.append(line)
  if (node.children.length > 0) {
    const ul = element("ul")
    for (const child of node.children.slice(0, maxChildren)) ul.append(drawNode(child, seen))
    if (node.children.length > maxChildren) {
      ul.append(element("li", "muted", `… and ${node.children.length - maxChildren} more`))
    }
    li.append(ul)
  }
  return li
}

const draw = (tree) => {
  const seen = new Map()
  nodeElement.textContent = `node ${tree.node} · ${new Date(tree.at).toLocaleTimeString()}`
  treeElement.replaceChildren(...tree.actors.map((node) => drawNode(node, seen)))
  previous = seen
}

const token = () => sessionStorage.getItem("fleetvisor-admin-token")

const follow = async () => {
  const headers = token() ? { authorization: `Bearer ${token()}` } : {}
  setState("connecting…", "starting")
  const response = await fetch("actors/stream", { headers })
  if (response.status === 401 || response.status === 403) {
    login.hidden = false
    document.getElementById("login-error").textContent = (await response.json()).error
    setState("needs a token", "stopped")
    return "stop"
  }
  if (!response.ok) throw new Error(`HTTP ${response.status}`)
  login.hidden = true
  setState("live", "running")
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ""
  for (;;) {
    const { done, value } = await reader.read()
    if (done) throw new Error("stream ended")
    buffer += value
    let end
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      if (!event.startsWith("event: tree")) continue
      const data = event.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n")
      draw(JSON.parse(data))
    }
  }
}

const run = async () => {
  for (let delay = 500; ; delay = Math.min(delay * 2, 10_000)) {
    try {
      if ((await follow()) === "stop") return
    } catch (error) {
      setState(`reconnecting (${error.message})`, "restarting")
    }
    await new Promise((resolve) => setTimeout(resolve, delay))
  }
}

login.addEventListener("submit", (event) => {
  event.preventDefault()
  sessionStorage.setItem("fleetvisor-admin-token", document.getElementById("token").value)
  run()
})

run()
