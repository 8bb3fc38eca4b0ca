export { PeerTransport } from "./peer-transport";
export type { PeerTransportOptions, PeerStats } from "./peer-transport";
