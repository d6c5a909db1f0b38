/**
 * Priorities of the service's own threads (the control loop's, the stop channel's), set from
 * inside the thread: Linux keeps a nice value and a scheduling policy per thread.
 *
 * @since 0.1.0
 */
import { execFileSync } from "node:child_process"
import { readlinkSync } from "node:fs"
import { setPriority } from "node:os"

/** What the calling thread asks for; either left `undefined` is not asked for. */
export interface ThreadPriorityOptions {
  /** The nice value, e.g. `-10`. */
  readonly priority?: number | undefined
  /** SCHED_FIFO at this priority (1–99). */
  readonly realtimePriority?: number | undefined
}

/** What the thread got: the nice value (`prioritized`), and SCHED_FIFO: true, false (not asked), or why it was refused. */
export interface ThreadPriority {
  readonly prioritized: boolean
  readonly realtime: boolean | string
}

/**
 * Gives the calling thread the nice value `priority` with `setPriority()` without a pid (this
 * thread's), and puts it, and only it, under SCHED_FIFO at `realtimePriority` with util-linux
 * `chrt`: it then runs as soon as it wakes up, ahead of every normal thread of the machine.
 * `-R` (SCHED_RESET_ON_FORK): threads and processes it starts do not inherit the policy.
 * Raising the nice value needs CAP_SYS_NICE; the policy needs it or an RLIMIT_RTPRIO of at
 * least `realtimePriority`.
 */
export const prioritizeThread = ({ priority, realtimePriority }: ThreadPriorityOptions): ThreadPriority => {
  let prioritized = false
  if (priority !== undefined) {
    try {
      setPriority(priority)
      prioritized = true
    } catch {
      // not allowed here
    }
  }
  let realtime: boolean | string = false
  if (realtimePriority !== undefined) {
    try {
      const tid = readlinkSync("/proc/thread-self").split("/").pop()!
      execFileSync("chrt", ["-f", "-R", "-p", String(realtimePriority), tid], {
        stdio: ["ignore", "ignore", "pipe"],
        timeout: 5_000
      })
      realtime = true
    } catch (error) {
      const failure = error as { readonly stderr?: Buffer; readonly message: string }
      realtime = failure.stderr?.toString().trim() || failure.message
    }
  }
  return { prioritized, realtime }
}
