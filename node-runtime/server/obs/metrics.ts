// Prometheus metrics of one member, on a registry of its own: several members can run in one
// test process without their series colliding in prom-client's global registry.
// Names, types and labels follow etcd's where an equivalent exists, so existing dashboards and
// alerts keep working.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** Latency buckets shared by fsync and request durations: 1 ms .. ~8 s, doubling. */
const DURATION_BUCKETS = exponential(0.001, 2, 14);
/** Peer round trips are much shorter on a LAN: 100 µs .. ~3 s, doubling (etcd's choice). */
const RTT_BUCKETS = exponential(0.0001, 2, 16);

function exponential(start: number, factor: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0, v = start; i < count; i++, v *= factor) out.push(Number(v.toPrecision(6)));
  return out;
}

export interface MetricsOptions {
  /** Collect prom-client's process and Node.js runtime metrics (default true). */
  processMetrics?: boolean;
}

export class Metrics {
  readonly registry = new Registry();

  // Consensus progress. etcd exposes committed/applied as gauges holding the raft index.
  readonly proposalsCommitted: Gauge;
  readonly proposalsApplied: Gauge;
  readonly proposalsPending: Gauge;
  readonly proposalsFailed: Counter;
  readonly leaderChanges: Counter;
  readonly hasLeader: Gauge;
  readonly isLeader: Gauge;

  // Storage.
  readonly walFsyncDuration: Histogram;
  readonly snapshotSaveDuration: Histogram;

  // Peer network, labelled by the remote member ID in hex as etcd does.
  readonly peerRoundTrip: Histogram<"To">;
  readonly peerSentBytes: Counter<"To">;
  readonly peerReceivedBytes: Counter<"From">;
  readonly peerSentFailures: Counter<"To">;
  readonly peerDroppedMessages: Counter<"To">;
  readonly peerActive: Gauge<"To">;
  /** Raft messages whose `from` is not the member the connection authenticated as. */
  readonly peerForgedMessages: Counter<"From">;
  /** Forwarded proposals dropped because an entry would not apply (or names another proposer). */
  readonly peerRejectedProposals: Counter<"From">;
  /** Peer connections refused or closed by a limit, by reason class. */
  readonly peerRejectedConnections: Counter<"reason">;

  // Client API.
  readonly requestDuration: Histogram<"grpc_type" | "grpc_service" | "grpc_method">;
  readonly requestsHandled: Counter<"grpc_type" | "grpc_service" | "grpc_method" | "grpc_code">;

  constructor(opts: MetricsOptions = {}) {
    const registers = [this.registry];
    this.proposalsCommitted = new Gauge({
      name: "etcd_server_proposals_committed_total",
      help: "The total number of consensus proposals committed.",
      registers,
    });
    this.proposalsApplied = new Gauge({
      name: "etcd_server_proposals_applied_total",
      help: "The total number of consensus proposals applied.",
      registers,
    });
    this.proposalsPending = new Gauge({
      name: "etcd_server_proposals_pending",
      help: "The current number of pending proposals to commit.",
      registers,
    });
    this.proposalsFailed = new Counter({
      name: "etcd_server_proposals_failed_total",
      help: "The total number of failed proposals seen.",
      registers,
    });
    this.leaderChanges = new Counter({
      name: "etcd_server_leader_changes_seen_total",
      help: "The number of leader changes seen.",
      registers,
    });
    this.hasLeader = new Gauge({
      name: "etcd_server_has_leader",
      help: "Whether or not a leader exists. 1 is existence, 0 is not.",
      registers,
    });
    this.isLeader = new Gauge({
      name: "etcd_server_is_leader",
      help: "Whether or not this member is a leader. 1 if is, 0 otherwise.",
      registers,
    });
    this.walFsyncDuration = new Histogram({
      name: "etcd_disk_wal_fsync_duration_seconds",
      help: "The latency distributions of fsync called by WAL.",
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.snapshotSaveDuration = new Histogram({
      name: "etcd_debugging_snap_save_total_duration_seconds",
      help: "The total latency distributions of save called by snapshot.",
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.peerRoundTrip = new Histogram({
      name: "etcd_network_peer_round_trip_time_seconds",
      help: "Round-Trip-Time histogram between peers.",
      labelNames: ["To"],
      buckets: RTT_BUCKETS,
      registers,
    });
    this.peerSentBytes = new Counter({
      name: "etcd_network_peer_sent_bytes_total",
      help: "The total number of bytes sent to peers.",
      labelNames: ["To"],
      registers,
    });
    this.peerReceivedBytes = new Counter({
      name: "etcd_network_peer_received_bytes_total",
      help: "The total number of bytes received from peers.",
      labelNames: ["From"],
      registers,
    });
    this.peerSentFailures = new Counter({
      name: "etcd_network_peer_sent_failures_total",
      help: "The total number of send failures to peers (connection lost with messages in flight).",
      labelNames: ["To"],
      registers,
    });
    this.peerDroppedMessages = new Counter({
      name: "raftkv_network_peer_dropped_messages_total",
      help: "Messages dropped from a full per-peer send queue (oldest first).",
      labelNames: ["To"],
      registers,
    });
    this.peerActive = new Gauge({
      name: "etcd_network_active_peers",
      help: "The current number of active peer connections.",
      labelNames: ["To"],
      registers,
    });
    this.peerForgedMessages = new Counter({
      name: "raftkv_network_peer_forged_messages_dropped_total",
      help: "Raft messages dropped because their sender differs from the member the connection authenticated as.",
      labelNames: ["From"],
      registers,
    });
    this.peerRejectedProposals = new Counter({
      name: "raftkv_network_peer_rejected_proposals_total",
      help: "Forwarded proposals dropped because an entry would not decode as the apply path decodes it.",
      labelNames: ["From"],
      registers,
    });
    this.peerRejectedConnections = new Counter({
      name: "raftkv_network_peer_rejected_connections_total",
      help: "Peer connections refused or closed: tls, identity, handshake, limit, idle, oversize, stalled.",
      labelNames: ["reason"],
      registers,
    });
    this.requestDuration = new Histogram({
      name: "grpc_server_handling_seconds",
      help: "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
      labelNames: ["grpc_type", "grpc_service", "grpc_method"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.requestsHandled = new Counter({
      name: "grpc_server_handled_total",
      help: "Total number of RPCs completed on the server, regardless of success or failure.",
      labelNames: ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
      registers,
    });
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** The text exposition for GET /metrics. */
  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** Member IDs appear in labels as lowercase hex without leading zeros, like etcd's. */
export function memberLabel(id: number): string {
  return id.toString(16);
}
