export { PeerTransport } from "./peer-transport";
export type { PeerTransportOptions, PeerStats, PeerCertPolicy, PeerRecord } from "./peer-transport";
