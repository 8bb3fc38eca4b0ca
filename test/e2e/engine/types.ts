/**
 * The engine's data model (the contract in /work/wt/E2E.md "Engine API"): what one run of the
 * Pulumi program declared, and the steps `pulumi up` / `pulumi destroy` would take to get there.
 * Plain JSON throughout, so a StackState can be written to disk between runs like Pulumi's
 * checkpoint.
 */

export interface ResourceOptions {
  deleteBeforeReplace?: boolean;
  replaceOnChanges?: string[];
  ignoreChanges?: string[];
  protect?: boolean;
  retainOnDelete?: boolean;
  /** URN of the resource whose deletion also deletes this one (the delete step is skipped). */
  deletedWith?: string;
}

export interface RecordedResource {
  urn: string;
  /** Pulumi type token, e.g. "aws:ec2/instance:Instance", "command:remote:Command". */
  type: string;
  name: string;
  /** false for component resources (and the root stack): they have no provider and no steps. */
  custom: boolean;
  parent?: string;
  /**
   * Plain JSON, secrets unwrapped. Assets are `{ $asset: "file", path, hash }` (the engine
   * diffs assets by content hash), resource references `{ $resource: urn, id }`.
   */
  inputs: Record<string, unknown>;
  /** Top-level input names whose value was (or contained) a secret. */
  secretInputs: string[];
  /** URNs this resource depends on: dependsOn (components expanded) + property dependencies. */
  dependencies: string[];
  /**
   * Per top-level input, the URNs its value came from (the engine's propertyDependencies): what
   * decides whether a resource is replaced *because* a dependency is replaced delete-before-
   * replace. Absent in hand-written states: then every input counts as depending on every
   * dependency (stricter).
   */
  propertyDependencies?: Record<string, string[]>;
  options: ResourceOptions;
  /** Provider id: stable across runs unless the resource is replaced. "" for components. */
  id: string;
  /** What the provider returned (inputs + computed fields); the applier overwrites it with real values. */
  outputs: Record<string, unknown>;
}

export interface StackState {
  resources: RecordedResource[];
  outputs: Record<string, unknown>;
}

export type StepOp = "create" | "update" | "replace" | "delete";

/**
 * One provider operation.
 *  - create: a new URN; `new` set.
 *  - update: in place; `old` and `new` set; `diffKeys` the changed top-level inputs.
 *  - replace: creates the replacement physical resource for an existing URN (`old` and `new`
 *    set, `new.id` differs). It never deletes: the old physical resource is deleted by its own
 *    "delete" step (`old` set), which comes before this step when `deleteBeforeReplace` and in
 *    the final delete phase otherwise (create-before-delete, Pulumi's default).
 *  - delete: deletes `old` (a URN gone from the program, or the old half of a replacement).
 *    When `old.options.retainOnDelete` is set the resource is only dropped from the state.
 */
export interface Step {
  op: StepOp;
  urn: string;
  old?: RecordedResource;
  new?: RecordedResource;
  diffKeys: string[];
  deleteBeforeReplace: boolean;
  /** Indexes (into Plan.steps) of the steps that must finish before this one starts. */
  after: number[];
}

export interface Plan {
  steps: Step[];
  /** The state once every step succeeded (the applier replaces outputs with real ones). */
  next: StackState;
}
