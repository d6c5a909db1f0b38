/**
 * The fleet dashboard: the robot list with status and alarms, a live map of the AGVs, the
 * position and joint readouts of the selected arm with small live charts, the control lease
 * (acquire, renewed while held, release), commands, and emergency stops.
 *
 * The robots come from `FleetSubscribe` (a snapshot, then conflated updates); the lease is
 * renewed at half its remaining time while held, and the page forgets it when the server says it
 * is gone. An emergency stop needs no lease; it goes over the stop channel when the service runs
 * one (`stopChannel.ts`), else as the `FleetEmergencyStop` RPC.
 *
 * @since 0.1.0
 */
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Stream from "effect/Stream"
import { FleetvisorClient } from "../../src/client/FleetvisorClient.js"
import type { FleetEvent, RobotCommand, RobotView } from "../../src/protocol/FleetRpcs.js"
import { clientLayer, keepSubscribed, showConnection } from "../shared/client.js"
import * as StopChannel from "./stopChannel.js"

const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T
const status = element<HTMLSpanElement>("status")
const message = element<HTMLSpanElement>("message")
const map = element<HTMLCanvasElement>("map")
const table = element<HTMLTableSectionElement>("robots")
const detail = element<HTMLElement>("detail")
const detailTitle = element<HTMLHeadingElement>("detail-title")
const acquireButton = element<HTMLButtonElement>("acquire")
const releaseButton = element<HTMLButtonElement>("release")
const leaseText = element<HTMLSpanElement>("lease")
const commandBar = element<HTMLDivElement>("commands")
const readout = element<HTMLDivElement>("readout")
const jointCharts = element<HTMLDivElement>("joints")

const runtime = ManagedRuntime.make(clientLayer())

const robots = new Map<string, RobotView>()
/** Recent joint angles of each arm, for the charts: at most `historyLength` samples. */
const history = new Map<string, Array<ReadonlyArray<number>>>()
const historyLength = 150
let selected: string | undefined
/** The lease this page holds: robot, expiry, and the fiber renewing it. */
let lease: { robot: string; expiresAt: number; renewing: Fiber.RuntimeFiber<unknown, unknown> } | undefined
let drawQueued = false

/**
 * The joints of an arm's axes: RMI always reports J1–J9, and a six-axis arm's J7–J9 stay 0, so
 * trailing zeros beyond the sixth are left out.
 */
const axesOf = (joints: ReadonlyArray<number>): ReadonlyArray<number> => {
  let axes = joints.length
  while (axes > 6 && joints[axes - 1] === 0) axes--
  return joints.slice(0, axes)
}

const showMessage = (text: string) => {
  message.textContent = text
}

const apply = (event: FleetEvent) => {
  if (event._tag === "FleetSnapshot") {
    robots.clear()
    history.clear()
    Object.assign(area, { minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity })
  }
  for (const robot of event.robots) {
    robots.set(robot.id, robot)
    if (robot.kind === "arm") {
      const samples = history.get(robot.id) ?? []
      samples.push(axesOf(robot.joints))
      if (samples.length > historyLength) samples.shift()
      history.set(robot.id, samples)
    }
  }
  requestDraw()
}

const requestDraw = () => {
  if (drawQueued) return
  drawQueued = true
  requestAnimationFrame(draw)
}

function draw() {
  drawQueued = false
  drawTable()
  drawMap()
  drawDetail()
}

/** The table's rows by robot id, kept across draws: a row replaced at 30 Hz would swallow clicks. */
const rows = new Map<string, HTMLTableRowElement>()

const setText = (node: Element, text: string) => {
  if (node.textContent !== text) node.textContent = text
}

const rowOf = (id: string) => {
  let row = rows.get(id)
  if (row === undefined) {
    row = document.createElement("tr")
    row.dataset.id = id
    for (let i = 0; i < 6; i++) row.append(document.createElement("td"))
    const badge = document.createElement("span")
    badge.className = "badge"
    row.cells[2].append(badge)
    row.onclick = () => select(id)
    rows.set(id, row)
  }
  return row
}

function drawTable() {
  const sorted = [...robots.values()].sort((a, b) => a.id.localeCompare(b.id))
  for (const [id, row] of rows) {
    if (!robots.has(id)) {
      row.remove()
      rows.delete(id)
    }
  }
  sorted.forEach((robot, index) => {
    const row = rowOf(robot.id)
    row.dataset.status = robot.status
    row.className = robot.id === selected ? "selected" : ""
    const [name, kind, status, battery, control, alarms] = row.cells
    setText(name, robot.id)
    setText(kind, robot.kind)
    const badge = status.firstElementChild as HTMLSpanElement
    badge.dataset.status = robot.status
    setText(badge, robot.status)
    setText(battery, robot.battery === undefined ? "" : `${Math.round(robot.battery)} %`)
    setText(
      control,
      lease?.robot === robot.id ? "you" : robot.controlledBy === undefined ? "" : `held by ${robot.controlledBy}`
    )
    setText(
      alarms,
      robot.alarms.map((alarm) => `${alarm.level === "fatal" ? "⛔" : "⚠"} ${alarm.code} ${alarm.message}`).join("\n")
    )
    alarms.className = "alarm"
    if (table.children[index] !== row) table.insertBefore(row, table.children[index] ?? null)
  })
}

/** The map's area in meters: every AGV position seen since the last snapshot. */
const area = { minX: Infinity, minY: Infinity, maxX: -Infinity, maxY: -Infinity }

function drawMap() {
  const ratio = window.devicePixelRatio || 1
  const w = map.clientWidth
  const h = map.clientHeight
  if (map.width !== Math.round(w * ratio)) map.width = Math.round(w * ratio)
  if (map.height !== Math.round(h * ratio)) map.height = Math.round(h * ratio)
  const context = map.getContext("2d")!
  context.setTransform(ratio, 0, 0, ratio, 0, 0)
  context.clearRect(0, 0, w, h)
  const agvs = [...robots.values()].filter((r) => r.kind === "agv")
  if (agvs.length === 0) return
  // Fit the area the AGVs have covered (at least 10 m square) into the canvas, y up. It only
  // grows, so the map holds still while they drive.
  for (const { pose } of agvs) {
    area.minX = Math.min(area.minX, pose.x - 1)
    area.minY = Math.min(area.minY, pose.y - 1)
    area.maxX = Math.max(area.maxX, pose.x + 1)
    area.maxY = Math.max(area.maxY, pose.y + 1)
  }
  const { minX, minY } = area
  const span = Math.max(10, area.maxX - minX, area.maxY - minY)
  const scale = Math.min(w, h) / span
  context.strokeStyle = "#eee"
  for (let m = 0; m <= span; m++) {
    context.beginPath()
    context.moveTo(m * scale, 0)
    context.lineTo(m * scale, h)
    context.moveTo(0, h - m * scale)
    context.lineTo(w, h - m * scale)
    context.stroke()
  }
  for (const agv of agvs) {
    const x = (agv.pose.x - minX) * scale
    const y = h - (agv.pose.y - minY) * scale
    context.save()
    context.translate(x, y)
    context.rotate(-agv.pose.theta)
    context.fillStyle = agv.status === "online" ? "#2a7" : agv.status === "paused" ? "#d90" : "#c33"
    context.beginPath()
    context.moveTo(10, 0)
    context.lineTo(-7, 6)
    context.lineTo(-7, -6)
    context.closePath()
    context.fill()
    if (agv.id === selected) {
      context.strokeStyle = "#36f"
      context.lineWidth = 2
      context.stroke()
    }
    context.restore()
    context.fillStyle = "#444"
    context.fillText(agv.id.split("/").pop() ?? agv.id, x + 8, y - 8)
  }
}

function drawDetail() {
  const robot = selected === undefined ? undefined : robots.get(selected)
  detail.hidden = robot === undefined
  if (robot === undefined) return
  detailTitle.textContent = `${robot.id} (${robot.kind}, ${robot.status})`
  const mine = lease?.robot === robot.id
  acquireButton.disabled = mine
  releaseButton.disabled = !mine
  leaseText.textContent = mine
    ? `you hold control, renewed until ${new Date(lease!.expiresAt).toLocaleTimeString()}`
    : robot.controlledBy === undefined ? "nobody holds control" : `held by ${robot.controlledBy}`
  for (const button of commandBar.querySelectorAll("button")) button.disabled = !mine
  if (robot.kind === "arm") {
    const p = robot.position
    readout.textContent = `x ${p.x.toFixed(1)}  y ${p.y.toFixed(1)}  z ${p.z.toFixed(1)}  w ${p.w.toFixed(1)}  p ${
      p.p.toFixed(1)
    }  r ${p.r.toFixed(1)}  |  ${axesOf(robot.joints).map((j, i) => `J${i + 1} ${j.toFixed(1)}°`).join("  ")}`
    drawJointCharts(history.get(robot.id) ?? [])
  } else {
    readout.textContent = `x ${robot.pose.x.toFixed(2)} m  y ${robot.pose.y.toFixed(2)} m  θ ${
      (robot.pose.theta * 180 / Math.PI).toFixed(0)
    }°`
    jointCharts.replaceChildren()
  }
}

/** One small chart per joint: its angle over the last `historyLength` updates. */
function drawJointCharts(samples: ReadonlyArray<ReadonlyArray<number>>) {
  const joints = samples.at(-1)?.length ?? 0
  while (jointCharts.children.length < joints) jointCharts.append(document.createElement("canvas"))
  while (jointCharts.children.length > joints) jointCharts.lastChild!.remove()
  ;[...jointCharts.children].forEach((node, j) => {
    const chart = node as HTMLCanvasElement
    chart.width = chart.clientWidth || 300
    chart.height = 60
    const context = chart.getContext("2d")!
    const values = samples.map((s) => s[j] ?? 0)
    const min = Math.min(...values) - 1
    const max = Math.max(...values) + 1
    context.clearRect(0, 0, chart.width, chart.height)
    context.fillStyle = "#666"
    context.fillText(`J${j + 1}`, 4, 12)
    context.strokeStyle = "#36f"
    context.beginPath()
    values.forEach((v, i) => {
      const x = (i / (historyLength - 1)) * chart.width
      const y = chart.height - ((v - min) / (max - min)) * chart.height
      if (i === 0) context.moveTo(x, y)
      else context.lineTo(x, y)
    })
    context.stroke()
  })
}

const commandsOf = (robot: RobotView): ReadonlyArray<readonly [string, RobotCommand]> =>
  robot.kind === "arm"
    ? [["Pause", { _tag: "Pause" }], ["Continue", { _tag: "Continue" }], ["Reset", { _tag: "Reset" }], [
      "Abort",
      { _tag: "Abort" }
    ], ["Home", { _tag: "MoveLinear", position: { x: 600, y: 0, z: 300, w: 180, p: 0, r: 0 }, speed: 100 }]]
    : [["Pause", { _tag: "Pause" }], ["Resume", { _tag: "Resume" }], ["Cancel order", { _tag: "CancelOrder" }], [
      "State request",
      { _tag: "StateRequest" }
    ]]

function select(id: string) {
  selected = id
  const robot = robots.get(id)
  commandBar.replaceChildren(
    ...(robot === undefined ? [] : commandsOf(robot)).map(([label, command]) => {
      const button = document.createElement("button")
      button.textContent = label
      button.onclick = () => runtime.runFork(send(id, command))
      return button
    })
  )
  requestDraw()
}

const explain = (error: { readonly _tag: string }) => {
  switch (error._tag) {
    case "ControlHeld":
      return "Another operator holds control of that robot"
    case "NotController":
      return "You do not hold control of that robot"
    case "UnknownRobot":
      return "The fleet does not know that robot"
    case "RobotOffline":
      return "That robot is offline"
    case "CommandNotSupported":
      return "That robot does not accept this command"
    default:
      return "Not connected; try again in a moment"
  }
}

const report = <A>(exit: Exit.Exit<A, { readonly _tag: string }>, success: string) =>
  Effect.sync(() => showMessage(Exit.isSuccess(exit) ? success : explain(Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : { _tag: "" })))

const send = (robot: string, command: RobotCommand) =>
  Effect.gen(function*() {
    const client = yield* FleetvisorClient
    const exit = yield* Effect.exit(client.rpc.FleetCommand({ robot, command }))
    yield* report(exit, `${command._tag} sent to ${robot}`)
  })

/** Renews the lease at half its remaining time until the server refuses or the page releases it. */
const renew = (robot: string) =>
  Effect.gen(function*() {
    const client = yield* FleetvisorClient
    while (lease?.robot === robot) {
      yield* Effect.sleep(Math.max(250, (lease.expiresAt - Date.now()) / 2))
      const renewed = yield* Effect.exit(client.rpc.FleetRenew({ robot }))
      if (Exit.isFailure(renewed)) {
        if (lease?.robot === robot) lease = undefined
        showMessage(`Control of ${robot} was lost`)
        requestDraw()
        return
      }
      if (lease?.robot === robot) lease.expiresAt = DateTime.toEpochMillis(renewed.value.expiresAt)
      requestDraw()
    }
  })

const acquire = (robot: string) =>
  Effect.gen(function*() {
    const client = yield* FleetvisorClient
    if (lease !== undefined) yield* release
    const exit = yield* Effect.exit(client.rpc.FleetAcquire({ robot }))
    yield* report(exit, `You control ${robot}`)
    if (Exit.isSuccess(exit)) {
      lease = { robot, expiresAt: DateTime.toEpochMillis(exit.value.expiresAt), renewing: Fiber.void as never }
      lease.renewing = yield* Effect.forkDaemon(renew(robot))
    }
    requestDraw()
  })

const release = Effect.gen(function*() {
  const client = yield* FleetvisorClient
  const held = lease
  if (held === undefined) return
  lease = undefined
  yield* Fiber.interrupt(held.renewing)
  yield* Effect.ignore(client.rpc.FleetRelease({ robot: held.robot }))
  showMessage(`Released ${held.robot}`)
  requestDraw()
})

/** Where emergency stops go first when the service runs a stop channel. */
const stopChannel = StopChannel.connect()

/** Stops over the stop channel when it answers, else as the RPC; `body.dataset.stopPath` says which went. */
const emergencyStop = (robot: string | undefined) =>
  Effect.gen(function*() {
    const sent = robot === undefined ? "Emergency stop sent to every robot" : `Emergency stop sent to ${robot}`
    const answer = yield* Effect.promise(() => stopChannel.stop(robot))
    if (answer !== undefined) {
      document.body.dataset.stopPath = "channel"
      return yield* report(answer.ok ? Exit.void : Exit.fail(answer.error), sent)
    }
    document.body.dataset.stopPath = "gateway"
    const client = yield* FleetvisorClient
    const exit = yield* Effect.exit(client.rpc.FleetEmergencyStop(robot === undefined ? {} : { robot }))
    yield* report(exit, sent)
  })

const fleet = Effect.gen(function*() {
  const client = yield* FleetvisorClient
  yield* client.resubscribe(client.rpc.FleetSubscribe({})).pipe(
    Stream.runForEach((event) => Effect.sync(() => apply(event))),
    keepSubscribed
  )
})

const connection = Effect.gen(function*() {
  const client = yield* FleetvisorClient
  yield* client.state.pipe(Stream.runForEach((state) =>
    Effect.sync(() => {
      showConnection(status, state)
      // A new connection is a new session: a lease of the old one died with it.
      if (state._tag !== "Open" && lease !== undefined) {
        runtime.runFork(Fiber.interrupt(lease.renewing))
        lease = undefined
        requestDraw()
      }
    })
  ))
})

acquireButton.onclick = () => selected !== undefined && runtime.runFork(acquire(selected))
releaseButton.onclick = () => runtime.runFork(release)
element<HTMLButtonElement>("estop-one").onclick = () => selected !== undefined && runtime.runFork(emergencyStop(selected))
element<HTMLButtonElement>("estop-all").onclick = () => runtime.runFork(emergencyStop(undefined))
window.addEventListener("resize", requestDraw)

/** For devtools and browser tests: the robots as this page has them. */
;(window as unknown as { fleetvisorFleet: unknown }).fleetvisorFleet = {
  robots: () => [...robots.values()],
  select,
  get lease() {
    return lease?.robot
  }
}

runtime.runFork(connection)
runtime.runFork(fleet)
