/**
 * The supervisor of a local cluster: one `raftkv` process per member, started with the flags the
 * topology plan renders; members that die are restarted with backoff (or left down with
 * --no-restart), each event printed as a line; `stop()` ends every member and waits for it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import { renderMemberFlags, type MemberEndpoint } from "../../components/topology";
import { localPaths, writePids, type LocalState } from "./local-files";
import { fetchAll, renderStatusLine } from "./local-status";

const FIRST_RESTART_DELAY_MS = 500;
const MAX_RESTART_DELAY_MS = 15_000;
/** A member that ran this long before dying is restarted as if it had never failed. */
const STABLE_RUN_MS = 30_000;
const STOP_GRACE_MS = 10_000;

export interface SupervisorOptions {
  dir: string;
  runtime: string;
  restart: boolean;
  /** Where event and status lines go; a TTY gets one status line rewritten in place. */
  out: NodeJS.WriteStream;
}

/** The last line a member wrote to stderr before dying (`raftkv: ...`), if its log has one. */
export function lastErrorLine(logFile: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(logFile, "r");
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, 8192);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    const lines = buf.toString("utf8").split("\n").filter((l) => l.startsWith("raftkv: "));
    return lines.at(-1)?.slice("raftkv: ".length);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

export class Supervisor {
  private readonly children = new Map<string, ChildProcess>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopping = false;
  private stopped: Promise<void> | undefined;
  /** The status line currently on screen (TTY) or last printed (plain output). */
  private shownStatus = "";

  constructor(
    private readonly opts: SupervisorOptions,
    private readonly members: readonly MemberEndpoint[],
    private readonly state: LocalState,
  ) {}

  start(): void {
    for (const m of this.members) this.spawnMember(m);
    this.savePids();
  }

  /** True while at least one member process runs. */
  anyRunning(): boolean {
    return this.children.size > 0;
  }

  private flags(m: MemberEndpoint): string[] {
    const p = localPaths(this.opts.dir);
    return renderMemberFlags(m, this.members, {
      dataDir: p.data(m.name),
      certDir: p.certs(m.name),
      clusterToken: this.state.token,
      // A member with data resumes from it and ignores the bootstrap flags, as etcd does.
      clusterState: "new",
      listenHost: m.host,
    });
  }

  private spawnMember(m: MemberEndpoint): ChildProcess {
    const logFile = localPaths(this.opts.dir).memberLog(m.name);
    const log = fs.openSync(logFile, "a");
    // Own process group: Ctrl-C reaches only the supervisor, which then stops members in order.
    const child = spawn(process.execPath, [this.opts.runtime, ...this.flags(m)], { stdio: ["ignore", log, log], detached: true });
    fs.closeSync(log);
    const startedAt = Date.now();
    this.children.set(m.name, child);
    child.on("error", (e) => this.say(`${m.name} could not be started: ${e.message}`));
    child.on("exit", (code, signal) => {
      if (this.children.get(m.name) === child) this.children.delete(m.name);
      if (this.stopping) return;
      this.savePids();
      const reason = signal !== null ? `killed by ${signal}` : `exit code ${String(code)}`;
      const detail = signal === null ? lastErrorLine(logFile) : undefined;
      const what = `${m.name} (pid ${String(child.pid)}) stopped: ${reason}${detail !== undefined ? ` — ${detail}` : ""}`;
      if (!this.opts.restart) {
        this.say(`${what}; --no-restart, so it stays down`);
        return;
      }
      const n = Date.now() - startedAt >= STABLE_RUN_MS ? 1 : (this.failures.get(m.name) ?? 0) + 1;
      this.failures.set(m.name, n);
      const delay = Math.min(FIRST_RESTART_DELAY_MS * 2 ** (n - 1), MAX_RESTART_DELAY_MS);
      this.say(`${what}; restarting in ${(delay / 1000).toFixed(1)} s (attempt ${n}, log ${logFile})`);
      const t = setTimeout(() => {
        this.timers.delete(t);
        if (this.stopping) return;
        const again = this.spawnMember(m);
        this.savePids();
        this.say(`${m.name} restarted (pid ${String(again.pid)})`);
      }, delay);
      this.timers.add(t);
    });
    return child;
  }

  private savePids(): void {
    const members: Record<string, number> = {};
    for (const [name, c] of this.children) if (c.pid !== undefined) members[name] = c.pid;
    writePids(this.opts.dir, { supervisor: process.pid, members });
  }

  /** Prints an event line, keeping a TTY's in-place status line below it. */
  say(line: string): void {
    const tty = this.opts.out.isTTY === true;
    if (tty && this.shownStatus !== "") this.opts.out.write("\r\x1b[K");
    this.opts.out.write(`${line}\n`);
    if (tty && this.shownStatus !== "") this.opts.out.write(this.shownStatus);
  }

  /**
   * Live status until stop(): on a TTY one line rewritten in place every second; otherwise a
   * plain timestamped line whenever leader, term, commit index or members up change.
   */
  async watch(): Promise<void> {
    const tty = this.opts.out.isTTY === true;
    let last = "";
    while (!this.stopping) {
      const line = renderStatusLine(this.members, await fetchAll(this.members));
      if (this.stopping) return;
      const stamped = `[${new Date().toTimeString().slice(0, 8)}] ${line}`;
      if (tty) {
        this.shownStatus = stamped;
        this.opts.out.write(`\r\x1b[K${stamped}`);
      } else if (line !== last) {
        this.opts.out.write(`${stamped}\n`);
      }
      last = line;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /** SIGTERM to every member (each hands over leadership and closes cleanly), SIGKILL after a grace period. */
  stop(): Promise<void> {
    this.stopped ??= this.stopAll();
    return this.stopped;
  }

  private async stopAll(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.opts.out.isTTY === true && this.shownStatus !== "") this.opts.out.write("\n");
    this.shownStatus = "";
    const running = [...this.children.values()];
    if (running.length > 0) this.opts.out.write(`stopping ${running.length} member(s) ...\n`);
    await Promise.all(
      running.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const kill = setTimeout(() => c.kill("SIGKILL"), STOP_GRACE_MS);
            c.once("exit", () => {
              clearTimeout(kill);
              resolve();
            });
            c.kill("SIGTERM");
          }),
      ),
    );
    this.opts.out.write("all members stopped\n");
  }
}
