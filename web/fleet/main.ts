/**
 * The fleet dashboard: the robot list with connection, safety, the robot's own safety report and
 * alarms, a live map of the AGVs, the position and joint readouts of the selected arm with small
 * live charts, the control lease (acquire, renewed while held, release), commands, and
 * emergency stops.
 *
 * An emergency stop latches a robot: it shows "STOPPED — reset required" (who, when, and for an
 * AGV whether it confirmed the stop) until the lease holder presses Reset; while latched, the
 * buttons that would move it are disabled (the server refuses those commands anyway).
 *
 * The robots come from `FleetSubscribe` (a snapshot, then conflated updates); the lease is
 * renewed at half its remaining time while held, and the page forgets it when the server says it
 * is gone. An emergency stop needs no lease; it goes over the stop channel when the service runs
 * one (`stopChannel.ts`), else as the `FleetEmergencyStop` RPC.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { FleetvisorClient } from "../../src/client/FleetvisorClient.js"
import type {
  CommandNotSupported,
  CommandRefused,
  ControlHeld,
  FleetEvent,
  InvalidRequest,
  NotController,
  RobotCommand,
  RobotOffline,
  RobotStopped,
  RobotView,
  StopReport,
  UnknownRobot
} from "../../src/protocol/FleetRpcs.js"
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
const detailState = element<HTMLDivElement>("detail-state")
const stopBanner = element<HTMLDivElement>("stop-banner")
const stopInfo = element<HTMLSpanElement>("stop-info")
const resetButton = element<HTMLButtonElement>("reset")
const resetHint = element<HTMLSpanElement>("reset-hint")

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

/** How a message reads: a success, something to look at, or a refusal or failure. */
type Tone = "ok" | "warn" | "error"

/** Shows `text` in the header, coloured by `tone` (`#message[data-tone]`). */
const showMessage = (text: string, tone: Tone) => {
  message.textContent = text
  message.dataset.tone = tone
}

/** The commands that would move a robot: refused by the server while it is latched. */
const movesRobot = new Set<RobotCommand["_tag"]>(["MoveLinear", "MoveJoint", "Continue", "Resume", "SendOrder"])

/** Whether the fleet can reach the robot; from `status` when a server does not send `connection`. */
const connectionOf = (robot: RobotView): NonNullable<RobotView["connection"]> =>
  robot.connection ??
    (robot.status === "offline" ? "offline" : robot.status === "disconnected" ? "broken" : "online")

/** The fleet's safety view of the robot; from `status` when a server does not send `safety`. */
const safetyOf = (robot: RobotView): NonNullable<RobotView["safety"]> =>
  robot.safety ??
    (robot.status === "estop" ? "stopped" : robot.status === "fault" ? "fault" : robot.status === "paused" ? "paused" : "normal")

const timeOf = (epochMs: number) => new Date(epochMs).toLocaleTimeString()

/** "by X at time", for a latch. */
const stoppedBy = (stop: { readonly by: string; readonly since: number }) => `by ${stop.by} at ${timeOf(stop.since)}`

/**
 * What the latch of a robot says, under "STOPPED — reset required": who stopped it and when,
 * and for an AGV whether it confirmed the stop (its Reset is refused until it has).
 */
const latchText = (robot: RobotView): string | undefined => {
  const stop = robot.stop
  if (stop === undefined) return undefined
  const confirmation = robot.kind !== "agv"
    ? ""
    : stop.confirmed
    ? "; the AGV confirmed the stop"
    : "; waiting for the AGV to confirm"
  return `Stopped ${stoppedBy(stop)}${confirmation}`
}

/** The robot's own safety report, in words (one item a line), and whether any of it needs attention. */
const reportedOf = (robot: RobotView): { readonly lines: ReadonlyArray<string>; readonly attention: boolean } | undefined => {
  const reported = robot.reportedSafety
  if (reported === undefined) return undefined
  const parts: Array<string> = []
  let attention = false
  if (robot.kind === "agv") {
    if (reported.eStop !== undefined) {
      parts.push(`e-stop ${reported.eStop}`)
      attention ||= reported.eStop !== "NONE"
    }
    if (reported.fieldViolation !== undefined) {
      parts.push(reported.fieldViolation ? "field violation" : "field clear")
      attention ||= reported.fieldViolation
    }
  } else {
    if (reported.servoReady !== undefined) {
      parts.push(reported.servoReady ? "servo ready" : "servo off")
      attention ||= !reported.servoReady
    }
    if (reported.tpMode !== undefined) {
      // TP enabled: the teach pendant has control, and the controller refuses remote motion.
      parts.push(reported.tpMode ? "TP enabled" : "TP disabled")
      attention ||= reported.tpMode
    }
  }
  return parts.length === 0 ? undefined : { lines: parts, attention }
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

/** The table's columns, in order: each cell has its name as class. */
const columns = ["name", "kind", "connection", "safety", "reported", "battery", "control", "alarms"] as const

const span = (className: string) => {
  const node = document.createElement("span")
  node.className = className
  return node
}

const div = (className: string) => {
  const node = document.createElement("div")
  node.className = className
  return node
}

const rowOf = (id: string) => {
  let row = rows.get(id)
  if (row === undefined) {
    row = document.createElement("tr")
    row.dataset.id = id
    for (const column of columns) {
      const cell = document.createElement("td")
      cell.className = column
      row.append(cell)
    }
    const [, , connection, safety, , , , alarms] = row.cells
    connection.append(span("badge"))
    safety.append(span("badge"), div("latched"), div("latch-info"))
    alarms.classList.add("alarm")
    row.onclick = () => select(id)
    rows.set(id, row)
  }
  return row
}

/** Fills the stop note of a cell or panel: hidden unless the robot is latched. */
const showLatch = (title: Element, info: Element, robot: RobotView) => {
  const text = latchText(robot)
  ;(title as HTMLElement).hidden = text === undefined
  ;(info as HTMLElement).hidden = text === undefined
  setText(title, text === undefined ? "" : "STOPPED — reset required")
  setText(info, text ?? "")
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
    const connection = connectionOf(robot)
    const safety = safetyOf(robot)
    row.dataset.status = robot.status
    row.dataset.connection = connection
    row.dataset.safety = safety
    row.className = robot.id === selected ? "selected" : ""
    const [name, kind, connectionCell, safetyCell, reportedCell, battery, control, alarms] = row.cells
    setText(name, robot.id)
    setText(kind, robot.kind)
    const connectionBadge = connectionCell.firstElementChild as HTMLSpanElement
    connectionBadge.dataset.connection = connection
    setText(connectionBadge, connection)
    const [safetyBadge, latched, latchInfo] = safetyCell.children
    ;(safetyBadge as HTMLElement).dataset.safety = safety
    setText(safetyBadge, safety)
    showLatch(latched, latchInfo, robot)
    const reported = reportedOf(robot)
    setText(reportedCell, reported?.lines.join("\n") ?? "")
    reportedCell.classList.toggle("attention", reported?.attention === true)
    setText(battery, robot.battery === undefined ? "" : `${Math.round(robot.battery)} %`)
    setText(
      control,
      lease?.robot === robot.id ? "you" : robot.controlledBy === undefined ? "" : `held by ${robot.controlledBy}`
    )
    setText(
      alarms,
      robot.alarms.map((alarm) => `${alarm.level === "fatal" ? "⛔" : "⚠"} ${alarm.code} ${alarm.message}`).join("\n")
    )
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
    const safety = safetyOf(agv)
    context.fillStyle = connectionOf(agv) !== "online"
      ? "#999"
      : safety === "normal"
      ? "#2a7"
      : safety === "paused"
      ? "#d90"
      : "#c33"
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
    if (safety === "stopped") {
      // A latched AGV wears a red ring until it is reset.
      context.strokeStyle = "#c33"
      context.lineWidth = 2
      context.beginPath()
      context.arc(0, 0, 14, 0, 2 * Math.PI)
      context.stroke()
    }
    context.restore()
    context.fillStyle = "#444"
    context.fillText(`${agv.id.split("/").pop() ?? agv.id}${safety === "stopped" ? " STOPPED" : ""}`, x + 8, y - 8)
  }
}

function drawDetail() {
  const robot = selected === undefined ? undefined : robots.get(selected)
  detail.hidden = robot === undefined
  if (robot === undefined) return
  const connection = connectionOf(robot)
  const safety = safetyOf(robot)
  setText(detailTitle, `${robot.id} (${robot.kind})`)
  const [connectionBadge, safetyBadge, reportedText] = detailState.children as unknown as ReadonlyArray<HTMLElement>
  connectionBadge.dataset.connection = connection
  setText(connectionBadge, connection)
  safetyBadge.dataset.safety = safety
  setText(safetyBadge, safety)
  const reported = reportedOf(robot)
  setText(reportedText, reported === undefined ? "" : `robot reports: ${reported.lines.join(" · ")}`)
  reportedText.classList.toggle("attention", reported?.attention === true)
  const mine = lease?.robot === robot.id
  acquireButton.disabled = mine
  releaseButton.disabled = !mine
  setText(
    leaseText,
    mine
      ? `you hold control, renewed until ${timeOf(lease!.expiresAt)}`
      : robot.controlledBy === undefined ? "nobody holds control" : `held by ${robot.controlledBy}`
  )
  const stop = robot.stop
  const latched = stop !== undefined
  stopBanner.hidden = !latched
  if (latched) {
    setText(stopInfo, latchText(robot) ?? "")
    const waiting = robot.kind === "agv" && !stop.confirmed
    resetButton.hidden = !mine
    resetButton.disabled = !mine || waiting
    resetButton.title = waiting ? "The AGV has not confirmed the stop yet: it refuses a Reset until it does" : ""
    setText(
      resetHint,
      !mine
        ? robot.controlledBy === undefined
          ? "Acquire control to reset it."
          : `Only ${robot.controlledBy}, who holds control, can reset it; acquire control when they release it.`
        : waiting
        ? "Reset is possible once the AGV has confirmed the stop."
        : "Make sure the cell is safe, then reset."
    )
  }
  for (const button of commandBar.querySelectorAll("button")) {
    const blocked = latched && movesRobot.has(button.dataset.command as RobotCommand["_tag"])
    button.disabled = !mine || blocked
    button.classList.toggle("blocked", blocked)
    button.title = blocked ? `${robot.id} is stopped: reset it first` : ""
  }
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
      button.dataset.command = command._tag
      button.onclick = () => runtime.runFork(send(id, command))
      return button
    })
  )
  requestDraw()
}

/** A refusal of the server, or the channel's, in words. */
const explain = (error: { readonly _tag: string }): string => {
  switch (error._tag) {
    case "ControlHeld": {
      const { holder, robot } = error as ControlHeld
      return `Another operator (${holder}) holds control of ${robot}`
    }
    case "NotController":
      return `You do not hold control of ${(error as NotController).robot}`
    case "UnknownRobot":
      return `The fleet does not know ${(error as UnknownRobot).robot ?? "that robot"}`
    case "RobotOffline":
      return `${(error as RobotOffline).robot} is offline: the command cannot reach it`
    case "CommandNotSupported": {
      const { command, robot } = error as CommandNotSupported
      return `${robot} does not accept ${command}`
    }
    case "CommandRefused": {
      const { code, command, reason, robot } = error as CommandRefused
      return `${robot} refused ${command}: ${reason}${code === undefined ? "" : ` (${code})`}`
    }
    case "RobotStopped": {
      const stop = error as RobotStopped
      return `${stop.robot} is stopped (${stoppedBy(stop)}): reset required`
    }
    case "InvalidRequest": {
      const { field, reason } = error as InvalidRequest
      return `Invalid ${field}: ${reason}`
    }
    case "BadRequest":
      return `The stop channel refused the request: ${(error as { readonly message?: string }).message ?? "bad request"}`
    case "RpcClientError":
      return "Not connected; try again in a moment"
    default:
      return `Refused: ${error._tag}`
  }
}

/** Shows how a call ended: `success` (its text, or a function of its value) or why it failed. */
const report = <A>(
  exit: Exit.Exit<A, { readonly _tag: string }>,
  success: string | ((value: A) => readonly [string, Tone])
) =>
  Effect.sync(() => {
    if (Exit.isSuccess(exit)) {
      if (typeof success === "string") showMessage(success, "ok")
      else showMessage(...success(exit.value))
      return
    }
    const failure = Cause.failureOption(exit.cause)
    if (Option.isSome(failure)) return showMessage(explain(failure.value), "error")
    showMessage(
      Cause.isInterruptedOnly(exit.cause) ? "Cancelled" : "The server failed to carry that out; see its log",
      "error"
    )
  })

const send = (robot: string, command: RobotCommand) =>
  Effect.gen(function*() {
    const client = yield* FleetvisorClient
    const wasLatched = robots.get(robot)?.stop !== undefined
    const exit = yield* Effect.exit(client.rpc.FleetCommand({ robot, command }))
    if (command._tag === "Reset" && Exit.isFailure(exit)) {
      // An AGV refuses its Reset until its own state confirms the stop: say so.
      const failure = Cause.failureOption(exit.cause)
      const view = robots.get(robot)
      if (
        Option.isSome(failure) && failure.value._tag === "RobotStopped" && view?.kind === "agv" &&
        view.stop?.confirmed === false
      ) {
        return showMessage(`${explain(failure.value)}; the AGV has not confirmed the stop yet`, "error")
      }
    }
    yield* report(
      exit,
      command._tag === "Reset" && wasLatched ? `${robot} reset: the stop is cleared` : `${command._tag} sent to ${robot}`
    )
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
        showMessage(`Control of ${robot} was lost`, "warn")
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
  showMessage(`Released ${held.robot}`, "ok")
  requestDraw()
})

/** Where emergency stops go first when the service runs a stop channel. */
const stopChannel = StopChannel.connect()

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`

/**
 * What an emergency stop did, from its answer: the robots it reached, and those it could only
 * latch (no live link: the stop may not have reached them, but they refuse motion until reset).
 * Without a report (an older server) only that it was sent.
 */
const stopOutcome = (robot: string | undefined, stopReport: StopReport | undefined): readonly [string, Tone] => {
  if (stopReport === undefined) {
    return [robot === undefined ? "Emergency stop sent to every robot" : `Emergency stop sent to ${robot}`, "ok"]
  }
  const { latchedOnly, reached } = stopReport
  if (robot !== undefined) {
    return latchedOnly.includes(robot)
      ? [`${robot} latched without a live link: the stop could not reach it`, "warn"]
      : [`Stopped ${robot}`, "ok"]
  }
  const stopped = `Stopped ${plural(reached.length, "robot")}`
  return latchedOnly.length === 0
    ? [stopped, "ok"]
    : [`${stopped}; ${latchedOnly.length} latched without a live link: ${latchedOnly.join(", ")}`, "warn"]
}

/** Stops over the stop channel when it answers, else as the RPC; `body.dataset.stopPath` says which went. */
const emergencyStop = (robot: string | undefined) =>
  Effect.gen(function*() {
    const answer = yield* Effect.promise(() => stopChannel.stop(robot))
    if (answer !== undefined) {
      document.body.dataset.stopPath = "channel"
      return yield* report(
        answer.ok ? Exit.succeed(answer.report) : Exit.fail(answer.error),
        (stopReport) => stopOutcome(robot, stopReport)
      )
    }
    document.body.dataset.stopPath = "gateway"
    const client = yield* FleetvisorClient
    const exit = yield* Effect.exit(client.rpc.FleetEmergencyStop(robot === undefined ? {} : { robot }))
    yield* report(exit, (stopReport) => stopOutcome(robot, stopReport))
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
resetButton.onclick = () => selected !== undefined && runtime.runFork(send(selected, { _tag: "Reset" }))
window.addEventListener("resize", requestDraw)

/** For devtools and browser tests: the robots as this page has them. */
;(window as unknown as { fleetvisorFleet: unknown }).fleetvisorFleet = {
  robots: () => [...robots.values()],
  select,
  /** Sends a command as the buttons do (its outcome shows in `#message`). */
  command: (robot: string, command: RobotCommand) => runtime.runPromise(send(robot, command)),
  get lease() {
    return lease?.robot
  }
}

runtime.runFork(connection)
runtime.runFork(fleet)
