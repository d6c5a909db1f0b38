/** CPU time of another process, as the kernel counts it. */
import * as fs from "node:fs"

/** Clock ticks per second of /proc's times (`getconf CLK_TCK`, 100 on Linux). */
const ticksPerSecond = 100

/** CPU time (user + system, all its threads) of a process so far, ms, from `/proc/<pid>/stat`; 10 ms steps. */
export const cpuMsOfPid = (pid: number): number => {
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ")
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond
}
