// TLS material that follows its files: reloaded on demand (SIGHUP) and when the files change,
// so certificates and CAs rotate without a restart. A broken replacement never takes effect:
// the previous material stays in use and the problem is logged.
import { watch, type FSWatcher } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "../obs/logger";
import { loadTlsMaterial, sameMaterial, type TlsFiles, type TlsMaterial } from "./material";

export interface ReloadingTlsOptions {
  logger: Logger;
  /** Watch the files' directories (default true). */
  watch?: boolean;
  /** Quiet period after the last file event before reloading (default 100 ms): writers replace
   * cert and key one after the other, and a reload between the two would see a mismatched pair. */
  debounceMs?: number;
}

export type TlsChangeListener = (material: TlsMaterial) => void;

export class ReloadingTls {
  private material: TlsMaterial;
  private readonly listeners = new Set<TlsChangeListener>();
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly logger: Logger;
  private readonly debounceMs: number;

  /** Loads the files now; throws TlsConfigError with a one-line message if they are unusable. */
  constructor(
    readonly files: TlsFiles,
    opts: ReloadingTlsOptions,
  ) {
    this.logger = opts.logger;
    this.debounceMs = opts.debounceMs ?? 100;
    this.material = loadTlsMaterial(files);
    if (opts.watch ?? true) this.startWatching();
  }

  current(): TlsMaterial {
    return this.material;
  }

  /** Calls `cb` with the new material after every successful change; returns an unsubscribe. */
  onChange(cb: TlsChangeListener): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /**
   * Re-reads the files. Returns true when new material took effect, false when nothing changed
   * or the new files are unusable (then the old material stays and an error is logged).
   */
  reload(): boolean {
    let next: TlsMaterial;
    try {
      next = loadTlsMaterial(this.files);
    } catch (err) {
      this.logger.error(
        { err: (err as Error).message, keptFingerprint: this.material.fingerprint },
        "TLS reload failed; keeping the current certificate",
      );
      return false;
    }
    if (sameMaterial(next, this.material)) return false;
    const previous = this.material;
    this.material = next;
    this.logger.info(
      {
        subject: next.subject,
        fingerprint: next.fingerprint,
        previousFingerprint: previous.fingerprint,
        validTo: next.validTo.toISOString(),
        trustedCAs: next.caSubjects.length,
      },
      "TLS material reloaded",
    );
    for (const cb of this.listeners) {
      try {
        cb(next);
      } catch (err) {
        this.logger.error({ err: (err as Error).message }, "TLS change listener failed");
      }
    }
    return true;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.watchers.splice(0)) w.close();
    this.listeners.clear();
  }

  private startWatching(): void {
    // Watch directories, not files: an atomic replacement (write temp file, rename over) gives
    // the path a new inode, which a watch on the old file would never report.
    const dirs = new Set([this.files.certFile, this.files.keyFile, this.files.trustedCaFile].map((f) => dirname(f)));
    for (const dir of dirs) {
      try {
        const w = watch(dir, { persistent: false }, () => this.schedule());
        w.on("error", (err) => this.logger.warn({ dir, err: err.message }, "TLS file watch failed; reload on SIGHUP only"));
        this.watchers.push(w);
      } catch (err) {
        this.logger.warn({ dir, err: (err as Error).message }, "cannot watch TLS directory; reload on SIGHUP only");
      }
    }
  }

  private schedule(): void {
    // Any event in the directory counts (symlink swaps like Kubernetes' ..data show up under
    // other names); reload() compares contents, so unrelated events cost one read.
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reload();
    }, this.debounceMs);
    this.timer.unref();
  }
}
