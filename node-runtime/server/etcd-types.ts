/**
 * TypeScript shapes of etcd v3 API messages as they look through proto-loader with
 * PROTO_LOADER_OPTIONS (see proto.ts): field names exactly as in the .proto (snake_case and
 * etcd's own camelCase/UPPERCASE ones), 64-bit integers as decimal strings, bytes as Buffers,
 * enums as their names. Decoded messages carry every field (defaults: true); messages we
 * send may leave fields out, hence the Partial<> used by callers.
 */

/** int64/uint64 on the wire: decoded as a decimal string; a number or string when sending. */
export type Long = string;

export interface ResponseHeader {
  cluster_id: Long;
  member_id: Long;
  revision: Long;
  raft_term: Long;
}

export interface KeyValue {
  key: Buffer;
  create_revision: Long;
  mod_revision: Long;
  version: Long;
  value: Buffer;
  lease: Long;
}

export interface Event {
  type: "PUT" | "DELETE";
  kv: KeyValue | null;
  prev_kv: KeyValue | null;
}

export type SortOrder = "NONE" | "ASCEND" | "DESCEND";
export type SortTarget = "KEY" | "VERSION" | "CREATE" | "MOD" | "VALUE";

export interface RangeRequest {
  key: Buffer;
  range_end: Buffer;
  limit: Long;
  revision: Long;
  sort_order: SortOrder;
  sort_target: SortTarget;
  serializable: boolean;
  keys_only: boolean;
  count_only: boolean;
  min_mod_revision: Long;
  max_mod_revision: Long;
  min_create_revision: Long;
  max_create_revision: Long;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  more: boolean;
  count: Long;
}

export interface PutRequest {
  key: Buffer;
  value: Buffer;
  lease: Long;
  prev_kv: boolean;
  ignore_value: boolean;
  ignore_lease: boolean;
}

export interface PutResponse {
  header: ResponseHeader;
  prev_kv: KeyValue | null;
}

export interface DeleteRangeRequest {
  key: Buffer;
  range_end: Buffer;
  prev_kv: boolean;
}

export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: Long;
  prev_kvs: KeyValue[];
}

export interface RequestOp {
  request?: "request_range" | "request_put" | "request_delete_range" | "request_txn";
  request_range?: Partial<RangeRequest> | null;
  request_put?: Partial<PutRequest> | null;
  request_delete_range?: Partial<DeleteRangeRequest> | null;
  request_txn?: Partial<TxnRequest> | null;
}

export interface ResponseOp {
  response?: "response_range" | "response_put" | "response_delete_range" | "response_txn";
  response_range?: RangeResponse | null;
  response_put?: PutResponse | null;
  response_delete_range?: DeleteRangeResponse | null;
  response_txn?: TxnResponse | null;
}

export type CompareResult = "EQUAL" | "GREATER" | "LESS" | "NOT_EQUAL";
export type CompareTarget = "VERSION" | "CREATE" | "MOD" | "VALUE" | "LEASE";

export interface Compare {
  result: CompareResult;
  target: CompareTarget;
  key: Buffer;
  target_union?: "version" | "create_revision" | "mod_revision" | "value" | "lease";
  version?: Long;
  create_revision?: Long;
  mod_revision?: Long;
  value?: Buffer;
  lease?: Long;
  range_end: Buffer;
}

export interface TxnRequest {
  compare: Partial<Compare>[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface CompactionRequest {
  revision: Long;
  physical: boolean;
}

export interface CompactionResponse {
  header: ResponseHeader;
}

export interface HashKVRequest {
  revision: Long;
}

export interface HashKVResponse {
  header: ResponseHeader;
  hash: number;
  compact_revision: Long;
}

export interface HashResponse {
  header: ResponseHeader;
  hash: number;
}

export interface SnapshotResponse {
  header: ResponseHeader;
  remaining_bytes: Long;
  blob: Buffer;
}

export interface WatchCreateRequest {
  key: Buffer;
  range_end: Buffer;
  start_revision: Long;
  progress_notify: boolean;
  filters: Array<"NOPUT" | "NODELETE">;
  prev_kv: boolean;
  watch_id: Long;
  fragment: boolean;
}

export interface WatchRequest {
  request_union?: "create_request" | "cancel_request" | "progress_request";
  create_request?: Partial<WatchCreateRequest> | null;
  cancel_request?: { watch_id: Long } | null;
  progress_request?: Record<string, never> | null;
}

export interface WatchResponse {
  header: ResponseHeader;
  watch_id: Long;
  created: boolean;
  canceled: boolean;
  compact_revision: Long;
  cancel_reason: string;
  fragment: boolean;
  events: Event[];
}

export interface LeaseGrantRequest {
  TTL: Long;
  ID: Long;
}

export interface LeaseGrantResponse {
  header: ResponseHeader;
  ID: Long;
  TTL: Long;
  error: string;
}

export interface LeaseRevokeRequest {
  ID: Long;
}

export interface LeaseRevokeResponse {
  header: ResponseHeader;
}

export interface LeaseKeepAliveRequest {
  ID: Long;
}

export interface LeaseKeepAliveResponse {
  header: ResponseHeader;
  ID: Long;
  TTL: Long;
}

export interface LeaseTimeToLiveRequest {
  ID: Long;
  keys: boolean;
}

export interface LeaseTimeToLiveResponse {
  header: ResponseHeader;
  ID: Long;
  TTL: Long;
  grantedTTL: Long;
  keys: Buffer[];
}

export interface LeaseLeasesResponse {
  header: ResponseHeader;
  leases: Array<{ ID: Long }>;
}

export interface Member {
  ID: Long;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export interface MemberAddRequest {
  peerURLs: string[];
  isLearner: boolean;
}

export interface MemberAddResponse {
  header: ResponseHeader;
  member: Member | null;
  members: Member[];
}

export interface MemberRemoveRequest {
  ID: Long;
}

export interface MemberUpdateRequest {
  ID: Long;
  peerURLs: string[];
}

export interface MemberPromoteRequest {
  ID: Long;
}

/** MemberList, MemberRemove, MemberUpdate and MemberPromote all answer with this shape. */
export interface MembersResponse {
  header: ResponseHeader;
  members: Member[];
}

export type AlarmType = "NONE" | "NOSPACE" | "CORRUPT";

export interface AlarmRequest {
  action: "GET" | "ACTIVATE" | "DEACTIVATE";
  memberID: Long;
  alarm: AlarmType;
}

export interface AlarmMember {
  memberID: Long;
  alarm: AlarmType;
}

export interface AlarmResponse {
  header: ResponseHeader;
  alarms: AlarmMember[];
}

export interface StatusResponse {
  header: ResponseHeader;
  version: string;
  dbSize: Long;
  leader: Long;
  raftIndex: Long;
  raftTerm: Long;
  raftAppliedIndex: Long;
  errors: string[];
  dbSizeInUse: Long;
  isLearner: boolean;
}

export interface DefragmentResponse {
  header: ResponseHeader;
}

export interface MoveLeaderRequest {
  targetID: Long;
}

export interface MoveLeaderResponse {
  header: ResponseHeader;
}
