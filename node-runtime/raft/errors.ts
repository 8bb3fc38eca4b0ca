/** Why a proposal or read was refused. The server maps these to etcd's error strings. */

/** This member knows no leader (election in progress, or partitioned). Retry later. */
export class NoLeaderError extends Error {
  override readonly name = "NoLeaderError";
  constructor() {
    super("raft: no leader");
  }
}

/**
 * The proposal was not accepted and will not be: leadership transfer in progress, forwarding
 * disabled, too many uncommitted bytes, this member is not a leader that can take it, ...
 */
export class ProposalDroppedError extends Error {
  override readonly name = "ProposalDroppedError";
  constructor(reason: string) {
    super(`raft: proposal dropped: ${reason}`);
  }
}

/** Another membership change is not yet committed (or this leader has not committed in its term). */
export class ConfChangeInFlightError extends Error {
  override readonly name = "ConfChangeInFlightError";
  constructor() {
    super("raft: a configuration change is already in progress");
  }
}

/** The membership change makes no sense against the current configuration. */
export class InvalidConfChangeError extends Error {
  override readonly name = "InvalidConfChangeError";
}
