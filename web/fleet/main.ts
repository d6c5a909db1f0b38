/**
 * The fleet dashboard: a map that fits and follows the robots (AGVs with their orders, arms at
 * their bases as a sketch of their pose; `map.ts`), a virtualised, searchable list of every
 * robot with connection and safety side by side (`list.ts`), the selected robot's controls
 * (the control lease: acquire, renewed while held, release; commands; emergency stop; Reset),
 * plots of its last minutes from the telemetry log (`plots.ts`), and the fleet's recent events
 * (`events.ts`). docs/dashboard.md describes each panel.
 *
 * An emergency stop latches a robot: it shows "STOPPED — reset required" (who, when, and for an
 * AGV whether it confirmed the stop) until the lease holder presses Reset; while latched, the
 * buttons that would move it are disabled (the server refuses those commands anyway).
 *
 * The robots come from `FleetSubscribe` (a snapshot, then conflated updates); the lease is
 * renewed at half its remaining time while held, and the page forgets it when the server says it
 * is gone. An emergency stop needs no lease; it goes over the stop channel when the service runs
 * one (`stopChannel.ts`), else as the `FleetEmergencyStop` RPC; in a cluster a copy goes to another
 * node at the same time (`peerStop.ts`).
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
import type { FleetEvent, RobotCommand, RobotView, StopReport } from "../../src/protocol/FleetRpcs.js"
import { clientLayer, keepSubscribed, showConnection } from "../shared/client.js"
import * as Events from "./events.js"
import * as List from "./list.js"
import * as FleetMap from "./map.js"
import * as Plots from "./plots.js"
import * as PeerStop from "./peerStop.js"
import * as StopChannel from "./stopChannel.js"
import { axesOf, connectionOf, explain, latchText, reportedOf, safetyOf, timeOf, type Tone } from "./words.js"

const element = <T extends HTMLElement>(id: string) => document.getElementById(id) as T
const status = element<HTMLSpanElement>("status")
const message = element<HTMLSpanElement>("message")
const detail = element<HTMLElement>("detail")
const detailHint = element<HTMLElement>("detail-hint")
const detailTitle = element<HTMLHeadingElement>("detail-title")
const acquireButton = element<HTMLButtonElement>("acquire")
const releaseButton = element<HTMLButtonElement>("release")
const leaseText = element<HTMLSpanElement>("lease")
const commandBar = element<HTMLDivElement>("commands")
const readout = element<HTMLDivElement>("readout")
const detailState = element<HTMLDivElement>("detail-state")
const stopBanner = element<HTMLDivElement>("stop-banner")
const stopInfo = element<HTMLSpanElement>("stop-info")
const resetButton = element<HTMLButtonElement>("reset")
const resetHint = element<HTMLSpanElement>("reset-hint")
const mapCanvas = element<HTMLCanvasElement>("map")

const runtime = ManagedRuntime.make(clientLayer())

const robots = new Map<string, RobotView>()
let selected: string | undefined
/** The lease this page holds: robot, expiry, and the fiber renewing it. */
let lease: { robot: string; expiresAt: number; renewing: Fiber.RuntimeFiber<unknown, unknown> } | undefined
let drawQueued = false

const map = FleetMap.make(mapCanvas, element("unplaced"))
const events = Events.make(element<HTMLOListElement>("events"))
const plots = Plots.make(element("plots"), element("plots-note"))
const list = List.make(
  {
    scroller: element("robots-scroll"),
    body: element<HTMLTableSectionElement>("robots"),
    search: element<HTMLInputElement>("search"),
    filter: element<HTMLSelectElement>("filter"),
    count: element("robot-count")
  },
  { selected: () => selected, mine: () => lease?.robot, select: (id) => select(id) }
)

/** Shows `text` in the header, coloured by `tone` (`#message[data-tone]`); a refusal also goes to the events. */
const showMessage = (text: string, tone: Tone, robot?: string) => {
  message.textContent = text
  message.dataset.tone = tone
  if (tone === "error") events.add({ at: Date.now(), robot: robot ?? "—", kind: "refusal", text })
  requestDraw()
}

/** The commands that would move a robot: refused by the server while it is latched. */
const movesRobot = new Set<RobotCommand["_tag"]>(["MoveLinear", "MoveJoint", "Continue", "Resume", "SendOrder"])

const apply = (event: FleetEvent) => {
  const now = Date.now()
  if (event._tag === "FleetSnapshot") {
    const first = robots.size === 0
    robots.clear()
    for (const robot of event.robots) {
      robots.set(robot.id, robot)
      if (first) events.latchedAtStart(robot)
    }
    list.invalidate()
  } else {
    for (const robot of event.robots) {
      const before = robots.get(robot.id)
      if (before === undefined) list.invalidate()
      events.compare(before, robot, now)
      robots.set(robot.id, robot)
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
  list.draw(robots)
  map.draw([...robots.values()], selected)
  drawDetail()
  events.draw()
}

const setText = (node: Element, text: string) => {
  if (node.textContent !== text) node.textContent = text
}

function drawDetail() {
  const robot = selected === undefined ? undefined : robots.get(selected)
  detail.hidden = robot === undefined
  detailHint.hidden = robot !== undefined
  if (robot === undefined) return
  const connection = connectionOf(robot)
  const safety = safetyOf(robot)
  setText(detailTitle, `${robot.id} (${robot.kind})`)
  const [connectionBadge, safetyBadge, reportedText] = detailState.children as unknown as ReadonlyArray<HTMLElement>
  connectionBadge.dataset.connection = connection
  setText(connectionBadge, `connection: ${connection}`)
  safetyBadge.dataset.safety = safety
  setText(safetyBadge, `safety: ${safety}`)
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
    button.title = blocked ? `${robot.id} is stopped: reset it first` : mine ? "" : "Acquire control first"
  }
  if (robot.kind === "arm") {
    const p = robot.position
    setText(
      readout,
      robot.joints.length === 0
        ? "No reading from the controller yet"
        : `x ${p.x.toFixed(1)}  y ${p.y.toFixed(1)}  z ${p.z.toFixed(1)}  w ${p.w.toFixed(1)}  p ${p.p.toFixed(1)}  r ${
          p.r.toFixed(1)
        }  |  ${axesOf(robot.joints).map((j, i) => `J${i + 1} ${j.toFixed(1)}°`).join("  ")}`
    )
  } else {
    const order = robot.order
    setText(
      readout,
      `${
        robot.poseKnown === false
          ? "no position reported yet"
          : `x ${robot.pose.x.toFixed(2)} m  y ${robot.pose.y.toFixed(2)} m  θ ${(robot.pose.theta * 180 / Math.PI).toFixed(0)}°`
      }${
        order === undefined
          ? "  |  no order"
          : `  |  order ${order.orderId}: ${order.nodes.filter((n) => n.released).length} released nodes to go, ${
            order.nodes.filter((n) => !n.released).length
          } in the horizon`
      }`
    )
  }
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
  plots.show(robot === undefined ? undefined : id)
  list.reveal(id)
  requestDraw()
}

/** Shows how a call ended: `success` (its text, or a function of its value) or why it failed. */
const report = <A>(
  exit: Exit.Exit<A, { readonly _tag: string }>,
  success: string | ((value: A) => readonly [string, Tone]),
  robot?: string
) =>
  Effect.sync(() => {
    if (Exit.isSuccess(exit)) {
      if (typeof success === "string") showMessage(success, "ok", robot)
      else showMessage(...success(exit.value), robot)
      return
    }
    const failure = Cause.failureOption(exit.cause)
    if (Option.isSome(failure)) return showMessage(explain(failure.value), "error", robot)
    showMessage(
      Cause.isInterruptedOnly(exit.cause) ? "Cancelled" : "The server failed to carry that out; see its log",
      "error",
      robot
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
        return showMessage(`${explain(failure.value)}; the AGV has not confirmed the stop yet`, "error", robot)
      }
    }
    yield* report(
      exit,
      command._tag === "Reset" && wasLatched ? `${robot} reset: the stop is cleared` : `${command._tag} sent to ${robot}`,
      robot
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
        const failure = Cause.failureOption(renewed.cause)
        showMessage(`Control of ${robot} was lost${Option.isSome(failure) ? `: ${explain(failure.value)}` : ""}`, "warn", robot)
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
    yield* report(exit, `You control ${robot}`, robot)
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
  showMessage(`Released ${held.robot}`, "ok", held.robot)
  requestDraw()
})

/** Where emergency stops go first when the service runs a stop channel. */
const stopChannel = StopChannel.connect()
const peerStop = PeerStop.connect()

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

/** Says what became of a stop's copy to another node: `body.dataset.peerStop` (`none`, `ok:<node>`, `failed:<node>`). */
const notePeer = (answer: PeerStop.PeerAnswer) => {
  document.body.dataset.peerStop = !answer.sent ? "none" : `${answer.ok ? "ok" : "failed"}:${answer.node}`
}

/**
 * Stops over the stop channel when it answers, else as the RPC; `body.dataset.stopPath` says which
 * went. A copy goes to another node at the same time (`peerStop.ts`); when this node's own path
 * fails, or gives no answer within 2 s while a copy went out, the page reports the copy's answer.
 */
const emergencyStop = (robot: string | undefined) =>
  Effect.gen(function*() {
    const copied = peerStop.peer() !== undefined
    const copy = peerStop.stop(robot).then((answer) => {
      notePeer(answer)
      return answer
    })
    const answer = yield* Effect.promise(() => stopChannel.stop(robot))
    let exit: Exit.Exit<StopReport | undefined, { readonly _tag: string }>
    if (answer !== undefined) {
      document.body.dataset.stopPath = "channel"
      exit = answer.ok ? Exit.succeed(answer.report) : Exit.fail(answer.error)
    } else {
      document.body.dataset.stopPath = "gateway"
      const client = yield* FleetvisorClient
      const stop = client.rpc.FleetEmergencyStop(robot === undefined ? {} : { robot })
      exit = yield* Effect.exit(
        copied ? stop.pipe(Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => ({ _tag: "NoAnswer" }) })) : stop
      )
    }
    if (Exit.isFailure(exit)) {
      const peer = yield* Effect.promise(() => copy)
      if (peer.sent && peer.ok) exit = Exit.succeed(peer.report)
    }
    yield* report(exit, (stopReport) => stopOutcome(robot, stopReport), robot)
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
mapCanvas.onclick = (event) => {
  const rect = mapCanvas.getBoundingClientRect()
  const id = map.pick(event.clientX - rect.left, event.clientY - rect.top)
  if (id !== undefined) select(id)
}
element("robots-scroll").addEventListener("scroll", requestDraw, { passive: true })
element("search").addEventListener("input", requestDraw)
element("filter").addEventListener("change", requestDraw)
window.addEventListener("resize", requestDraw)
// Keyboard: "/" focuses the search, Escape clears it (or the selection), ↑/↓ move the selection through the list.
window.addEventListener("keydown", (event) => {
  const search = element<HTMLInputElement>("search")
  if (event.key === "/" && document.activeElement !== search) {
    event.preventDefault()
    search.focus()
  } else if (event.key === "Escape") {
    if (document.activeElement === search && search.value !== "") search.value = ""
    else selected = undefined
    plots.show(selected)
    requestDraw()
  } else if ((event.key === "ArrowDown" || event.key === "ArrowUp") && !(document.activeElement instanceof HTMLSelectElement)) {
    const shown = list.shown()
    if (shown.length === 0) return
    event.preventDefault()
    const index = selected === undefined ? -1 : shown.indexOf(selected)
    select(shown[Math.max(0, Math.min(shown.length - 1, index + (event.key === "ArrowDown" ? 1 : -1)))])
  }
})

/** For devtools and browser tests: the robots as this page has them. */
;(window as unknown as { fleetvisorFleet: unknown }).fleetvisorFleet = {
  robots: () => [...robots.values()],
  select,
  /** Sends a command as the buttons do (its outcome shows in `#message`). */
  command: (robot: string, command: RobotCommand) => runtime.runPromise(send(robot, command)),
  get lease() {
    return lease?.robot
  },
  /** What the map drew last: each robot's place in CSS pixels, and the canvas's size. */
  map: () => map.frame(),
  /** The events panel's lines, newest first. */
  events: () => events.lines(),
  /** The node each stop's copy goes to (`peerStop.ts`), if any. */
  peer: () => peerStop.peer()
}

runtime.runFork(connection)
runtime.runFork(fleet)
