/**
 * A simulated disk with the failure model the WAL and snapshot code must survive:
 * - written data sits in a page cache until fsync (or an O_DSYNC write completes); a crash keeps
 *   what was synced plus, sometimes, a torn prefix of what was not (or that prefix followed by
 *   zeros, as a file extended but not yet filled);
 * - a new, renamed or deleted name is durable only once its directory is fsync'd; on a crash each
 *   directory with unsynced changes keeps all of them or none;
 * - syncs take time, sometimes far longer than an election timeout (slow disk);
 * - a member may crash at any disk call, e.g. between a snapshot file and its WAL marker.
 * Each incarnation of a member gets its own mount: once it has crashed, its pending calls never
 * return and its late calls change nothing.
 */
import { constants } from "node:fs";
import { dirname } from "node:path";
import type { StorageFile, StorageFs } from "../../../../node-runtime/storage";
import type { Owner, World } from "./world";

const { O_CREAT, O_EXCL, O_TRUNC, O_DSYNC } = constants;

class SimFile {
  buf = Buffer.alloc(0);
  len = 0;
  /** Bytes [0, syncedLen) are durable, unless an overwrite made `synced` a separate copy. */
  syncedLen = 0;
  synced: Buffer | undefined;

  data(): Buffer {
    return this.buf.subarray(0, this.len);
  }

  write(src: Uint8Array, pos: number): void {
    if (this.synced === undefined && pos < this.syncedLen) this.synced = Buffer.from(this.buf.subarray(0, this.syncedLen));
    const end = pos + src.length;
    if (end > this.buf.length) {
      const grown = Buffer.alloc(Math.max(end, this.buf.length * 2, 4096));
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    if (pos > this.len) this.buf.fill(0, this.len, pos);
    this.buf.set(src, pos);
    this.len = Math.max(this.len, end);
  }

  truncate(n: number): void {
    if (n < this.syncedLen && this.synced === undefined) this.synced = Buffer.from(this.buf.subarray(0, this.syncedLen));
    if (n > this.len) this.write(Buffer.alloc(n - this.len), this.len);
    this.len = n;
  }

  sync(): void {
    this.syncedLen = this.len;
    this.synced = undefined;
  }

  /** What survives a crash; true if a torn tail of unsynced data survived too. */
  crash(world: World, tornRate: number): boolean {
    let torn = false;
    let keep: Buffer;
    if (this.synced !== undefined) keep = this.synced;
    else {
      keep = this.buf.subarray(0, this.syncedLen);
      const unsynced = this.len - this.syncedLen;
      if (unsynced > 0 && world.rng.chance(tornRate)) {
        const n = world.rng.int(0, unsynced);
        torn = true;
        keep = this.buf.subarray(0, this.syncedLen + n);
        if (world.rng.chance(0.3)) keep = Buffer.concat([keep, Buffer.alloc(unsynced - n)]);
      }
    }
    this.buf = Buffer.from(keep);
    this.len = this.buf.length;
    this.syncedLen = this.len;
    this.synced = undefined;
    return torn;
  }
}

export interface DiskFaults {
  /** Probability that a sync is slow (hundreds of ms to seconds). */
  slowSyncRate: number;
  /** Probability that a crash keeps a torn prefix of unsynced data. */
  tornRate: number;
  /** Probability, per mutating call, that the member crashes right there. */
  crashAtCallRate: number;
  /**
   * Probability that the member crashes at its next mutating call after a snapshot file is
   * renamed into place: the window before the WAL marks it (issue 12 bug 2).
   */
  crashAfterSnapshotRate: number;
}

function fsError(code: string, path: string): Error {
  return Object.assign(new Error(`${code}: simulated, ${path}`), { code });
}

export class SimDisk {
  private readonly names = new Map<string, SimFile>();
  private readonly durableNames = new Map<string, SimFile>();
  private readonly dirs = new Set<string>(["/"]);
  private readonly dirtyDirs = new Set<string>();
  private tokens = 0;
  private armed: Owner | undefined;
  faultsOn = true;
  readonly stats = { snapshotsSaved: 0, tornTails: 0, crashesAtCall: 0 };

  constructor(
    private readonly world: World,
    private readonly faults: DiskFaults,
    /** Called when a disk call decides the member crashes there. */
    private readonly crashHere: (owner: Owner) => void,
  ) {}

  /** Power loss: unsynced data and names go (see the class comment). */
  crash(): void {
    for (const dir of [...this.dirtyDirs].sort()) {
      const keep = this.world.rng.chance(0.5);
      for (const [p] of [...this.names]) if (dirname(p) === dir && !keep) this.names.delete(p);
      for (const [p, f] of [...this.durableNames]) {
        if (dirname(p) !== dir) continue;
        if (!keep) this.names.set(p, f);
      }
      this.syncDir(dir);
    }
    this.dirtyDirs.clear();
    const seen = new Set<SimFile>();
    for (const f of this.names.values()) {
      if (seen.has(f)) continue;
      seen.add(f);
      if (f.crash(this.world, this.faultsOn ? this.faults.tornRate : 0)) this.stats.tornTails++;
    }
  }

  files(): string[] {
    return [...this.names.keys()].sort();
  }

  /** Directed scenarios: a file's bytes as they are now, and cutting a file short durably. */
  contents(path: string): Buffer | undefined {
    const f = this.names.get(path);
    return f === undefined ? undefined : Buffer.from(f.data());
  }

  cutDurably(path: string, len: number): void {
    const f = this.names.get(path)!;
    f.truncate(len);
    f.sync();
  }

  mount(owner: Owner): StorageFs {
    const world = this.world;
    const disk = this;
    /** A call that completes after `ms`; `mutates` calls are where a crash may strike. */
    const call = <T>(ms: number, mutates: boolean, fn: () => T, partly?: () => void): Promise<T> => {
      if (owner.dead) return new Promise<T>(() => undefined);
      if (mutates && disk.faultsOn && (disk.armed === owner || world.rng.chance(disk.faults.crashAtCallRate))) {
        disk.armed = undefined;
        disk.stats.crashesAtCall++;
        // The power goes in the middle of the call: part of a write may have reached the cache.
        partly?.();
        disk.crashHere(owner);
        return new Promise<T>(() => undefined);
      }
      return new Promise<T>((resolve, reject) => {
        let out: T;
        try {
          out = fn();
        } catch (e) {
          world.schedule(world.now, owner, () => reject(e));
          return;
        }
        world.schedule(world.now + ms, owner, () => resolve(out));
      });
    };
    const syncMs = (): number => (disk.faultsOn && world.rng.chance(disk.faults.slowSyncRate) ? world.rng.int(200, 3000) : world.rng.int(0, 3));
    const handle = (path: string, file: SimFile | undefined, dsync: boolean): StorageFile => ({
      write: (buf, offset, length, position) =>
        call(
          dsync ? syncMs() : 0,
          true,
          () => {
            if (file === undefined) throw fsError("EBADF", path);
            file.write(buf.subarray(offset, offset + length), position);
            return { bytesWritten: length };
          },
          () => file?.write(buf.subarray(offset, offset + world.rng.int(0, length)), position),
        ).then((r) => {
          // O_DSYNC: durable once the write returns.
          if (dsync) file!.sync();
          return r;
        }),
      datasync: () => call(syncMs(), true, () => undefined).then(() => file?.sync()),
      sync: () =>
        call(syncMs(), true, () => undefined).then(() => {
          if (file === undefined) disk.syncDir(path);
          else file.sync();
        }),
      truncate: (n) => call(0, true, () => file?.truncate(n)),
      close: () => call(0, false, () => undefined),
    });
    return {
      open: (path, flags, _mode) =>
        call(0, true, () => {
          const f = typeof flags === "number" ? flags : flags === "wx" ? O_CREAT | O_EXCL : 0;
          if (disk.dirs.has(path)) return handle(path, undefined, false);
          let file = disk.names.get(path);
          if (file !== undefined && f & O_CREAT && f & O_EXCL) throw fsError("EEXIST", path);
          if (file === undefined) {
            if (!(f & O_CREAT)) throw fsError("ENOENT", path);
            if (!disk.dirs.has(dirname(path))) throw fsError("ENOENT", path);
            file = new SimFile();
            disk.names.set(path, file);
            disk.dirtyDirs.add(dirname(path));
          }
          if (f & O_TRUNC) file.truncate(0);
          return handle(path, file, (f & O_DSYNC) !== 0);
        }),
      readFile: (path) =>
        call(0, false, () => {
          const f = disk.names.get(path);
          if (f === undefined) throw fsError(disk.dirs.has(path) ? "EISDIR" : "ENOENT", path);
          return Buffer.from(f.data());
        }),
      readdir: (dir) =>
        call(0, false, () => {
          if (!disk.dirs.has(dir)) throw fsError("ENOENT", dir);
          const out = new Set<string>();
          for (const p of [...disk.names.keys(), ...disk.dirs]) if (p !== dir && dirname(p) === dir) out.add(p.slice(dir.length + 1));
          return [...out].sort();
        }),
      mkdir: (dir) =>
        call(0, true, () => {
          let first: string | undefined;
          const missing: string[] = [];
          for (let d = dir; !disk.dirs.has(d); d = dirname(d)) missing.unshift(d);
          for (const d of missing) {
            first ??= d;
            disk.dirs.add(d);
          }
          return first;
        }),
      unlink: (path) =>
        call(0, true, () => {
          if (!disk.names.delete(path)) throw fsError("ENOENT", path);
          disk.dirtyDirs.add(dirname(path));
        }),
      rename: (from, to) =>
        call(0, true, () => {
          const f = disk.names.get(from);
          if (f === undefined) throw fsError("ENOENT", from);
          disk.names.delete(from);
          disk.names.set(to, f);
          if (to.endsWith(".snap")) {
            disk.stats.snapshotsSaved++;
            if (disk.faultsOn && world.rng.chance(disk.faults.crashAfterSnapshotRate)) disk.armed = owner;
          }
          disk.dirtyDirs.add(dirname(from));
          disk.dirtyDirs.add(dirname(to));
        }),
      stat: (path) =>
        call(0, false, () => {
          if (disk.dirs.has(path)) return { mode: 0o40700 };
          if (disk.names.has(path)) return { mode: 0o100600 };
          throw fsError("ENOENT", path);
        }),
      chmod: () => call(0, false, () => undefined),
      tempToken: () => `sim.${++disk.tokens}`,
    };
  }

  private syncDir(dir: string): void {
    for (const p of [...this.durableNames.keys()]) if (dirname(p) === dir && !this.names.has(p)) this.durableNames.delete(p);
    for (const [p, f] of this.names) if (dirname(p) === dir) this.durableNames.set(p, f);
    this.dirtyDirs.delete(dir);
  }
}
