import type { LabLike, RecordedResource } from "./contract";

/** What a provider may look at and touch while it carries out one step. */
export interface ApplyContext {
  lab: LabLike;
  /** Scratch directory of this applier (keys, forwarder configs and logs). */
  workDir: string;
  /** Every resource that exists right now (prior state plus the steps completed so far). */
  live(): RecordedResource[];
  /** VPC DNS: writes the load balancers' names into /etc/hosts of every booted host. */
  syncDns(): Promise<void>;
  /** Marks an instance's host booted: from now on it gets the DNS entries. */
  hostBooted(instanceUrn: string): void;
  log(line: string): void;
}

/**
 * One resource type, carried out for real. `create` and `update` return the outputs to keep in
 * the state (the mock's outputs with what really happened merged in, e.g. a command's stdout).
 */
export interface Provider {
  create(r: RecordedResource, ctx: ApplyContext): Promise<Record<string, unknown>>;
  update(old: RecordedResource, next: RecordedResource, diffKeys: string[], ctx: ApplyContext): Promise<Record<string, unknown>>;
  delete(old: RecordedResource, ctx: ApplyContext): Promise<void>;
}

/** A failure with the detail an operator needs: what failed, and the command's stderr. */
export class ProviderError extends Error {
  override readonly name = "ProviderError";
  constructor(
    message: string,
    readonly stderrTail?: string,
  ) {
    super(message);
  }
}

/** Types the applier only records: they have no counterpart in the lab (documented in README.md). */
export const recordedOnly: Provider = {
  create: async (r) => r.outputs,
  update: async (_old, next) => next.outputs,
  delete: async () => undefined,
};

export function tail(text: string, lines = 20): string {
  const all = text.trimEnd().split("\n");
  return all.slice(-lines).join("\n");
}
