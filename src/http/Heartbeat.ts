/**
 * The pings of many WebSocket connections on one timer: every `intervalMs` each member whose
 * last ping was answered is pinged, in slices of 64 spaced 5 ms apart (a ping is a system call
 * and brings back a pong, so a round over thousands of connections is spread out instead of
 * stalling everyone's frames at once), and `timeoutMs` after the round's last ping every member
 * whose ping is still unanswered is told so (`timedOut`). The timer runs while there are members.
 *
 * Members are kept in an intrusive list (their own `prevBeat`/`nextBeat` fields), so joining
 * costs an idle connection no allocation. `/ws` sessions and `/foxglove` connections share it.
 *
 * ```ts
 * const heartbeat = Heartbeat.make(30_000, 10_000)
 * heartbeat.join(member)      // member.socket.on("pong", () => (member.pingRound = 0))
 * heartbeat.leave(member)     // when the connection ends
 * ```
 *
 * @since 0.1.0
 */

/** A connection the heartbeat pings. */
export interface Member {
  /** The heartbeat's list: set by `join`, cleared by `leave`; never touched by the member. */
  prevBeat: Member | undefined
  nextBeat: Member | undefined
  /** The round of the unanswered ping, 0 when none is: the member sets it to 0 on each pong. */
  pingRound: number
  readonly socket: { readonly readyState: number; readonly OPEN: number; ping(): void }
  /** Its ping went unanswered for the timeout: end the connection. */
  timedOut(): void
}

/** The heartbeat of a set of members. */
export interface Heartbeat {
  readonly intervalMs: number
  readonly timeoutMs: number
  /** Adds a member; its first ping comes with the next round. */
  readonly join: (member: Member) => void
  /** Removes a member (a member not in it is ignored). */
  readonly leave: (member: Member) => void
}

const pingsPerSlice = 64
const pingGapMs = 5

class Rounds implements Heartbeat {
  private first: Member | undefined = undefined
  /** The next member the current round pings, and the timer of its next slice. */
  private cursor: Member | undefined = undefined
  private pending: ReturnType<typeof setTimeout> | undefined = undefined
  private round = 0
  private pinger: ReturnType<typeof setInterval> | undefined = undefined
  /** The checks of the rounds not yet checked, oldest first. */
  private readonly checks: Array<ReturnType<typeof setTimeout>> = []

  constructor(readonly intervalMs: number, readonly timeoutMs: number) {}

  join = (member: Member): void => {
    member.nextBeat = this.first
    if (this.first !== undefined) this.first.prevBeat = member
    this.first = member
    this.pinger ??= setInterval(() => this.ping(), this.intervalMs)
  }

  leave = (member: Member): void => {
    if (this.cursor === member) this.cursor = member.nextBeat
    if (member.prevBeat !== undefined) member.prevBeat.nextBeat = member.nextBeat
    else if (this.first === member) this.first = member.nextBeat
    else return
    if (member.nextBeat !== undefined) member.nextBeat.prevBeat = member.prevBeat
    member.prevBeat = member.nextBeat = undefined
    if (this.first === undefined) {
      clearInterval(this.pinger)
      clearTimeout(this.pending)
      this.pinger = this.pending = undefined
      for (const check of this.checks.splice(0)) clearTimeout(check)
    }
  }

  private ping(): void {
    const round = ++this.round
    this.cursor = this.first
    this.pingSlice(round)
  }

  private pingSlice(round: number): void {
    if (round !== this.round) return
    for (let pinged = 0; this.cursor !== undefined && pinged < pingsPerSlice; pinged++) {
      const member = this.cursor
      this.cursor = member.nextBeat
      const socket = member.socket
      if (member.pingRound !== 0 || socket.readyState !== socket.OPEN) continue
      member.pingRound = round
      socket.ping()
    }
    // The round's check counts from its last ping: every member has the whole timeout to answer.
    if (this.cursor !== undefined) this.pending = setTimeout(() => this.pingSlice(round), pingGapMs)
    else this.checks.push(setTimeout(() => this.check(round), this.timeoutMs))
  }

  private check(round: number): void {
    this.checks.shift()
    for (let member = this.first; member !== undefined; member = member.nextBeat) {
      if (member.pingRound === 0 || member.pingRound > round) continue
      member.pingRound = 0
      member.timedOut()
    }
  }
}

/** A heartbeat pinging every `intervalMs`, giving each ping `timeoutMs` to be answered. */
export const make = (intervalMs: number, timeoutMs: number): Heartbeat => new Rounds(intervalMs, timeoutMs)

const shared = new WeakMap<object, Heartbeat>()

/**
 * The heartbeat of `owner` (a gateway's session limits, a Foxglove endpoint's settings): made
 * at the first call, so that all of its connections share one timer.
 */
export const of = (owner: object, intervalMs: number, timeoutMs: number): Heartbeat => {
  let heartbeat = shared.get(owner)
  if (heartbeat === undefined) {
    heartbeat = make(intervalMs, timeoutMs)
    shared.set(owner, heartbeat)
  }
  return heartbeat
}
