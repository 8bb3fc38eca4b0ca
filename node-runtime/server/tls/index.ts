export { loadTlsMaterial, splitPemCertificates, sameMaterial, TlsConfigError } from "./material";
export type { TlsFiles, TlsMaterial } from "./material";
export { ReloadingTls } from "./reloading";
export type { ReloadingTlsOptions, TlsChangeListener } from "./reloading";
export { onFirstBytes, PendingHandshakes } from "./pending-handshakes";
export type { EvictReason, PendingLimits } from "./pending-handshakes";
