/**
 * The typed errors of supervisors.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/** A dynamic supervisor already has `maxChildren` children: this is how a node sheds load. */
export class MaxChildren extends Data.TaggedError("MaxChildren")<{
  readonly supervisor: string
  readonly maxChildren: number
}> {
  override get message() {
    return `${this.supervisor} already has its maximum of ${this.maxChildren} children`
  }
}

/**
 * A supervisor restarted its children more than `maxRestarts` times within
 * `period`: it stops them all and fails with this, and its own parent decides.
 */
export class MaxRestartsExceeded extends Data.TaggedError("MaxRestartsExceeded")<{
  readonly supervisor: string
  readonly maxRestarts: number
  readonly periodMillis: number
}> {
  override get message() {
    return `${this.supervisor} exceeded ${this.maxRestarts} restarts in ${this.periodMillis} ms`
  }
}

/** No child with this id or ref under the supervisor. */
export class ChildNotFound extends Data.TaggedError("ChildNotFound")<{
  readonly supervisor: string
  readonly child: string
}> {
  override get message() {
    return `${this.supervisor} has no child ${this.child}`
  }
}
