/**
 * Loopback ports for test servers, reserved across processes.
 *
 * The unit suites run as parallel mocha workers, and other checkouts' tests run on the same
 * machine, so "free a moment ago" is not enough: between one process's check and its member's
 * bind another process can check the same ports, and a test that kills and restarts a member
 * leaves its ports free for a while. So ports come in blocks of 10 below the kernel's ephemeral
 * range (26000-32767 with the default 32768-60999: no outgoing connection takes them), and a
 * block is reserved by a file `<tmpdir>/raftkv-test-ports/<first port>` holding the owner's PID
 * and start time, created with O_EXCL. A reservation lasts until `release()` or the owner's
 * exit; a file left by a dead process is taken over. Every port is also checked free by a bind,
 * which covers processes that do not use these files.
 */
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

const BLOCK = 10;
/** Below 26000 lie the fixed per-engineer ranges (21000-25999); the harness plans from here. */
const LOWEST = 26000;
const DIR = path.join(os.tmpdir(), "raftkv-test-ports");

export interface PortReservation {
  /** base .. base+count-1 are this process's until release(). */
  readonly base: number;
  readonly count: number;
  release(): void;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** The kernel's ephemeral range, which outgoing connections take their local ports from. */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi)) return [lo!, hi!];
  } catch {
    // not Linux: assume the IANA range
  }
  return [49152, 65535];
}

/** Ports [from, to) to hand out: below the ephemeral range when there is room, else above it. */
function portSpan(): [number, number] {
  const [lo, hi] = ephemeralRange();
  return lo - LOWEST >= 1000 ? [LOWEST, lo] : [hi + 1, 65536];
}

/** "<pid> <start time>": a PID alone can be reused by an unrelated process later. */
function identity(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // PID 1 here reaps late: a zombie counts as gone.
    if (fields[0] === "Z") return undefined;
    return `${pid} ${fields[19]}`;
  } catch {
    return undefined;
  }
}

const SELF = identity(process.pid) ?? `${process.pid} ?`;
const held = new Set<string>();

function holderAlive(file: string): boolean {
  let owner: string;
  try {
    owner = fs.readFileSync(file, "utf8").trim();
  } catch {
    return false;
  }
  if (owner === "") {
    // Being written right now (empty for a moment), or its writer died in between.
    try {
      return Date.now() - fs.statSync(file).mtimeMs < 10_000;
    } catch {
      return false;
    }
  }
  const pid = Number(owner.split(" ")[0]);
  return Number.isInteger(pid) && pid > 0 && identity(pid) === owner;
}

function tryLock(file: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, SELF, { flag: "wx" });
      held.add(file);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      if (holderAlive(file)) return false;
      fs.rmSync(file, { force: true });
    }
  }
  return false;
}

function unlock(file: string): void {
  if (!held.delete(file)) return;
  try {
    if (fs.readFileSync(file, "utf8") === SELF) fs.rmSync(file, { force: true });
  } catch {
    // already gone
  }
}

process.on("exit", () => {
  for (const f of [...held]) unlock(f);
});

/** Reserves `count` consecutive loopback ports that are free now and that no other test process will plan. */
export async function reservePorts(count: number): Promise<PortReservation> {
  fs.mkdirSync(DIR, { recursive: true });
  const [from, to] = portSpan();
  const blocks = Math.ceil(count / BLOCK);
  const starts = Math.floor((to - from) / BLOCK) - blocks + 1;
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = from + Math.floor(Math.random() * starts) * BLOCK;
    const files: string[] = [];
    let locked = true;
    for (let b = 0; b < blocks && locked; b++) {
      const file = path.join(DIR, String(base + b * BLOCK));
      if (tryLock(file)) files.push(file);
      else locked = false;
    }
    if (locked) {
      const checks = await Promise.all(Array.from({ length: count }, (_, i) => portFree(base + i)));
      if (checks.every(Boolean)) {
        return { base, count, release: () => files.forEach(unlock) };
      }
    }
    files.forEach(unlock);
  }
  throw new Error(`no ${count} consecutive free ports found in ${from}-${to - 1}`);
}

let pool: { reservation: PortReservation; next: number } | undefined;

/**
 * One loopback port that is free now and reserved for this process until it exits (taken from
 * a block this process holds, so a stopped server's port is not handed to anyone else).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    if (pool === undefined || pool.next >= pool.reservation.base + pool.reservation.count) {
      pool = { reservation: await reservePorts(BLOCK), next: 0 };
      pool.next = pool.reservation.base;
    }
    const port = pool.next++;
    if (await portFree(port)) return port;
  }
}
