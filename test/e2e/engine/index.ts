/** The e2e engine: run the Pulumi program under mocks, then plan `pulumi up` / `pulumi destroy`. */
export type { Plan, RecordedResource, ResourceOptions, StackState, Step, StepOp } from "./types";
export { runProgram, DEFAULT_AMI, REPO_ROOT, type RunOptions } from "./runProgram";
export { planUpdate, planDestroy, PlanError, summarizePlan } from "./plan";
export { diffInputs, type InputDiff } from "./diff";
export { FORCE_NEW } from "./forceNew";
