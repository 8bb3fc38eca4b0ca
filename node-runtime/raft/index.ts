export * from "./types";
export * from "./errors";
export { RaftNode, maySendBeforePersist, type RaftConfig, type RestartState, type Status, type PeerProgress } from "./raft";
export { encodeMessage, decodeMessage, encodeConfChange, decodeConfChange } from "./codec";
