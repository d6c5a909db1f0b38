/**
 * Priorities of the fleet's own threads (the control loop's, the stop channel's), set from
 * inside the thread: Linux keeps a nice value and a scheduling policy per thread.
 *
 * Plain JavaScript, as the worker modules that import it (see ControlLoopWorker.mjs).
 */
import { execFileSync } from "node:child_process"
import { readlinkSync } from "node:fs"
import { setPriority } from "node:os"

/**
 * Gives the calling thread the nice value `priority` with `setPriority()` without a pid (this
 * thread's), and puts it, and only it, under SCHED_FIFO at `realtimePriority` with util-linux
 * `chrt`: it then runs as soon as it wakes up, ahead of every normal thread of the machine.
 * `-R` (SCHED_RESET_ON_FORK): threads and processes it starts do not inherit the policy.
 * Raising the nice value needs CAP_SYS_NICE; the policy needs it or an RLIMIT_RTPRIO of at
 * least `realtimePriority`. Either left `undefined` is not asked for.
 *
 * Returns `prioritized` (the nice value was set) and `realtime`: true, false (not asked), or
 * why it was refused.
 */
export const prioritizeThread = ({ priority, realtimePriority }) => {
  let prioritized = false
  if (priority !== undefined) {
    try {
      setPriority(priority)
      prioritized = true
    } catch {
      // not allowed here
    }
  }
  let realtime = false
  if (realtimePriority !== undefined) {
    try {
      const tid = readlinkSync("/proc/thread-self").split("/").pop()
      execFileSync("chrt", ["-f", "-R", "-p", String(realtimePriority), tid], {
        stdio: ["ignore", "ignore", "pipe"],
        timeout: 5_000
      })
      realtime = true
    } catch (error) {
      realtime = error.stderr?.toString().trim() || error.message
    }
  }
  return { prioritized, realtime }
}
