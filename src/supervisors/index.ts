/**
 * Supervision: static supervisors with OTP's three strategies and dynamic
 * supervisors for on-demand children.
 *
 * @since 0.1.0
 */
export * as Backoff from "./Backoff.js"
export * as ChildSpec from "./ChildSpec.js"
export * as DynamicSupervisor from "./DynamicSupervisor.js"
export * as Supervisor from "./Supervisor.js"
export * as SupervisorError from "./SupervisorError.js"
