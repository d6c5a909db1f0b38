/** Types of ThreadPriority.mjs: nice value and SCHED_FIFO of the calling thread. */
export declare const prioritizeThread: (options: {
  readonly priority?: number | undefined
  readonly realtimePriority?: number | undefined
}) => { readonly prioritized: boolean; readonly realtime: boolean | string }
