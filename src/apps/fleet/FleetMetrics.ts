/**
 * The fleet's Prometheus metrics: the control loop's ticks, overruns and jitter, the MQTT
 * link's traffic and refusals, the telemetry log's rows, the stop channel's requests, the
 * emergency stops, latches and leases, and the number of robot links. They
 * are read from the parts themselves ({@link FleetService.stats}) when `/metrics` is scraped,
 * once per scrape however many metrics ask.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Prometheus from "prom-client"
import type { FleetService, FleetStats } from "./Fleet.js"

/** Registers the fleet's metrics in `registry`, read from `fleet` at scrape time. */
export const register = (registry: Prometheus.Registry, fleet: Pick<FleetService, "stats">): void => {
  let pending: { readonly at: number; readonly stats: Promise<FleetStats> } | undefined
  // prom-client collects every metric of a scrape at once: they share one read of the fleet.
  const read = () => {
    const now = Date.now()
    if (pending === undefined || now - pending.at > 250) pending = { at: now, stats: Effect.runPromise(fleet.stats) }
    return pending.stats
  }
  const gauge = (name: string, help: string, value: (stats: FleetStats) => number | undefined) =>
    new Prometheus.Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const v = value(await read())
        if (v !== undefined) this.set(v)
      }
    })
  const counter = (name: string, help: string, value: (stats: FleetStats) => number | undefined) =>
    new Prometheus.Counter({
      name,
      help,
      registers: [registry],
      async collect() {
        const v = value(await read())
        if (v === undefined) return
        this.reset()
        this.inc(v)
      }
    })
  const seconds = (ms: number | undefined) => (ms === undefined ? undefined : ms / 1000)

  gauge("fleetvisor_fleet_links", "Robot links running under fleet/links.", (s) => s.links)
  gauge("fleetvisor_fleet_latched_robots", "Robots latched by an emergency stop, awaiting a Reset.", (s) => s.latched)
  gauge("fleetvisor_fleet_leases", "Control leases held.", (s) => s.leases)
  counter("fleetvisor_fleet_emergency_stops_total", "Robots stopped and latched (a stop of every robot counts each).", (s) =>
    s.stops)
  counter("fleetvisor_fleet_latch_write_failures_total", "Stop latches (or their clearing) the database could not take.", (s) =>
    s.latchWriteFailures)
  gauge("fleetvisor_rmi_cancelled_replies", "Late replies to instructions an abort cancelled, ignored by the arms' live sessions.", (s) =>
    s.cancelledReplies)

  counter("fleetvisor_control_loop_ticks_total", "Ticks of the 100 Hz control loop.", (s) => s.loop?.ticks)
  counter("fleetvisor_control_loop_overruns_total", "Ticks whose phases ended after the next tick was due.", (s) =>
    s.loop?.overruns)
  counter("fleetvisor_control_loop_missed_total", "Grid points skipped because the loop was a period behind.", (s) =>
    s.loop?.missed)
  gauge("fleetvisor_control_loop_jitter_p50_seconds", "Median lateness of tick starts (last 10 s).", (s) =>
    seconds(s.loop?.jitterP50Ms))
  gauge("fleetvisor_control_loop_jitter_p99_seconds", "99th percentile lateness of tick starts (last 10 s).", (s) =>
    seconds(s.loop?.jitterP99Ms))
  gauge("fleetvisor_control_loop_jitter_max_seconds", "Latest tick start (last 10 s).", (s) =>
    seconds(s.loop?.jitterMaxMs))
  gauge("fleetvisor_control_loop_phase_p99_seconds", "99th percentile time of a tick's phases (last 10 s).", (s) =>
    seconds(s.loop?.durationP99Ms))

  gauge("fleetvisor_mqtt_connected", "1 while the fleet's broker connection is up.", (s) =>
    s.mqtt === undefined ? undefined : s.mqtt.connected ? 1 : 0)
  counter("fleetvisor_mqtt_messages_received_total", "VDA 5050 messages received under the prefix.", (s) =>
    s.mqtt?.received)
  counter("fleetvisor_mqtt_messages_invalid_total", "VDA 5050 messages refused (topic or schema).", (s) =>
    s.mqtt?.invalid)
  counter("fleetvisor_mqtt_messages_published_total", "Messages published to AGVs.", (s) => s.mqtt?.published)
  counter("fleetvisor_mqtt_publish_failures_total", "Messages to AGVs that could not be published.", (s) =>
    s.mqtt?.publishFailed)
  counter("fleetvisor_mqtt_agvs_discovered_total", "AGV links started on a first message.", (s) =>
    s.mqtt?.discovered)
  // One series per reason (cap, rate, manufacturer, name): never one per AGV, whose names outsiders choose.
  new Prometheus.Counter({
    name: "fleetvisor_mqtt_agvs_refused_total",
    help: "Messages of AGVs without a link that discovery refused, by reason (cap, rate, manufacturer, name).",
    labelNames: ["reason"],
    registers: [registry],
    async collect() {
      const refused = (await read()).mqtt?.refused
      if (refused === undefined) return
      this.reset()
      for (const [reason, n] of Object.entries(refused)) this.inc({ reason }, n)
    }
  })
  // One series per reason (bad-credentials, unknown-ca, certificate-required, unreachable, …): a fixed set.
  new Prometheus.Counter({
    name: "fleetvisor_mqtt_connect_failures_total",
    help: "Failed connects and reconnects of the fleet's broker connection, by reason (refused credentials, TLS, unreachable, …).",
    labelNames: ["reason"],
    registers: [registry],
    async collect() {
      const failures = (await read()).mqtt?.connectFailures
      if (failures === undefined) return
      this.reset()
      for (const [reason, n] of Object.entries(failures)) this.inc({ reason }, n)
    }
  })
  gauge("fleetvisor_mqtt_agv_links", "AGV links the broker connection started or routes to (FLEET_MAX_AGVS bounds it).", (s) =>
    s.mqtt?.agvLinks)
  counter("fleetvisor_mqtt_ingest_dropped_total", "AGV messages the ingest thread dropped: the main thread was too far behind.", (s) =>
    s.mqtt?.ingestDropped)
  counter("fleetvisor_mqtt_samples_total", "AGV visualizations written to the sample columns without going through an actor.", (s) =>
    s.mqtt?.sampled)
  counter(
    "fleetvisor_mqtt_sample_gaps_total",
    "AGV visualizations whose headerId did not follow the AGV's previous one (a lost message, or an AGV that counted again).",
    (s) => s.mqtt?.gaps
  )

  counter("fleetvisor_telemetry_rows_appended_total", "Telemetry rows handed to the log.", (s) =>
    s.telemetry?.appended)
  counter("fleetvisor_telemetry_rows_committed_total", "Telemetry rows committed to SQLite.", (s) =>
    s.telemetry?.committed)
  counter("fleetvisor_telemetry_rows_dropped_total", "Telemetry rows dropped (queue full or worker lost).", (s) =>
    s.telemetry?.dropped)
  gauge("fleetvisor_telemetry_rows_queued", "Telemetry rows appended, not yet committed.", (s) =>
    s.telemetry?.queued)

  counter("fleetvisor_stop_channel_requests_total", "Emergency stops asked on the stop channel.", (s) =>
    s.stopChannel?.requests)
  counter("fleetvisor_stop_channel_published_total", "AGV stops published by the stop channel's own thread.", (s) =>
    s.stopChannel?.published)
  counter("fleetvisor_stop_channel_forwarded_total", "Stops the stop channel handed to the main thread.", (s) =>
    s.stopChannel?.forwarded)
  counter("fleetvisor_stop_channel_bad_requests_total", "Stop channel frames refused as malformed.", (s) =>
    s.stopChannel?.badRequests)
  counter("fleetvisor_stop_channel_publish_failures_total", "Stop channel publishes that failed.", (s) =>
    s.stopChannel?.publishFailed)
  gauge("fleetvisor_stop_channel_connections", "Open stop channel connections.", (s) => s.stopChannel?.connections)
  counter("fleetvisor_stop_channel_refused_host_total", "Stop channel upgrades refused for their Host (421).", (s) =>
    s.stopChannel?.refusedHost)
  counter("fleetvisor_stop_channel_refused_origin_total", "Stop channel upgrades refused for their Origin (403).", (s) =>
    s.stopChannel?.refusedOrigin)
  counter("fleetvisor_stop_channel_refused_address_total", "Stop channel upgrades refused: the address had its connections (429).", (s) =>
    s.stopChannel?.refusedAddress)
  counter("fleetvisor_stop_channel_refused_auth_total", "Stop channel connections closed at once: no, a wrong or revoked credential (4401), a role below STOP_ROLE (4403).", (s) =>
    s.stopChannel?.refusedAuth)
  counter("fleetvisor_stop_channel_throttled_total", "Stop channel connections closed for sending stops too fast.", (s) =>
    s.stopChannel?.throttled)
  counter("fleetvisor_stop_channel_coalesced_total", "Stops answered by an identical stop of the last second.", (s) =>
    s.stopChannel?.coalesced)
}
