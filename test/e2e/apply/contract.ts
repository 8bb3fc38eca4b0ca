/**
 * What the applier uses of the engine's plans and of the lab (the E2E.md contract), in one place.
 * LabLike is the part of a Lab the applier needs, so its scheduling can be tested without one.
 */
import type { Lab } from "../lab";

export type { Plan, RecordedResource, StackState, Step, StepOp } from "../engine";
export type { ExecResult, Host as LabHost, HostSpec, NetNs as LabNetNs } from "../lab";

export type LabLike = Pick<Lab, "addHost" | "host" | "hostByIp" | "addNamespace" | "runnerCanReach"> &
  Partial<Pick<Lab, "createVolume" | "resizeVolume" | "deleteVolume" | "attachVolume" | "detachVolume">>;
