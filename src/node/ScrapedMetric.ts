/**
 * Prometheus metrics whose values are read at scrape time from counts kept elsewhere (an
 * actor's stats, a connection's counters), so that nothing updates a metric on a hot path.
 *
 * @since 0.1.0
 */
import * as Prometheus from "prom-client"

/** A counter whose value at each scrape is `read()`: a running total since the process started. */
export const counter = (registry: Prometheus.Registry, name: string, help: string, read: () => number): Prometheus.Counter =>
  new Prometheus.Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset()
      this.inc(read())
    }
  })

/** A gauge whose value at each scrape is `read()`. */
export const gauge = (registry: Prometheus.Registry, name: string, help: string, read: () => number): Prometheus.Gauge =>
  new Prometheus.Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read())
    }
  })

/** A counter with one label whose values at each scrape are `read()`: label value → running total. */
export const labeledCounter = (
  registry: Prometheus.Registry,
  name: string,
  help: string,
  label: string,
  read: () => Readonly<Record<string, number>>
): Prometheus.Counter<string> =>
  new Prometheus.Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      this.reset()
      for (const [value, total] of Object.entries(read())) this.inc({ [label]: value }, total)
    }
  })
