/**
 * Mocha configuration of the unit suites (the first part of `npm test`).
 *
 * Test files run in parallel, 2 at a time (one per core of the CI machine): most tests wait on
 * member processes, sockets and timers, and the whole unit part needs about 9 CPU minutes, so a
 * third job would only make the files share the CPU (measured; see README "How the suite runs").
 * Test processes never share ports (test/helpers/free-port.ts reserves them across processes),
 * temp dirs or network namespaces. dist/ is built once before the workers start
 * (test/helpers/mocha-global.ts).
 *
 * The abuse suite (test/abuse) runs afterwards, one file at a time (test/mocharc.serial.json):
 * its tests hold time budgets and memory bounds under attack, measured with the machine to
 * themselves.
 */
const fs = require("node:fs");
const path = require("node:path");

/**
 * The longest files (measured), started first so that none of them starts last and keeps one
 * worker busy alone at the end. A file missing here just runs in its alphabetical place.
 */
const LONGEST_FIRST = [
  "test/compat/raftkvctl-vs-etcdctl.test.ts",
  "test/ctl/compat.test.ts",
  "test/compat/raftkvctl-auth-vs-etcdctl.test.ts",
  "test/components/auth.test.ts",
  "test/raft/member-sim.test.ts",
  "test/local/launcher.test.ts",
  "test/raft/sim.test.ts",
  "test/compat/etcdctl-vs-etcd.test.ts",
  "test/components/hostScripts.test.ts",
  "test/e2e/engine/runProgram.test.ts",
  "test/server/cluster/membership-resize.test.ts",
  "test/compat/auth-etcdctl-vs-etcd.test.ts",
  "test/components/cluster.test.ts",
  "test/storage/wal-crash.test.ts",
  "test/chaos/chaos.test.ts",
];

const SERIAL_DIRS = ["test/abuse/"];

function testFiles(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => {
      const p = path.posix.join(dir, e.name);
      if (e.isDirectory()) return testFiles(p);
      return e.isFile() && e.name.endsWith(".test.ts") ? [p] : [];
    })
    .sort();
}

const all = testFiles("test").filter((f) => !SERIAL_DIRS.some((d) => f.startsWith(d)));
const first = LONGEST_FIRST.filter((f) => all.includes(f));

module.exports = {
  "node-option": ["import=tsx"],
  require: ["test/helpers/mocha-global.ts"],
  spec: [...first, ...all.filter((f) => !first.includes(f))],
  extension: ["ts"],
  timeout: 30000,
  exit: true,
  parallel: true,
  jobs: 2,
};
