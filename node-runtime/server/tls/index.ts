export { loadTlsMaterial, splitPemCertificates, sameMaterial, TlsConfigError } from "./material";
export type { TlsFiles, TlsMaterial } from "./material";
export { ReloadingTls } from "./reloading";
export type { ReloadingTlsOptions, TlsChangeListener } from "./reloading";
