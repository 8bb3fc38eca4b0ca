/**
 * user | role | auth: etcdctl 3.4's auth commands, their argument checks, password input and
 * output in every format (simple lines, Go JSON of the response, `fields` where etcdctl has it,
 * "table not supported as output format" after the call where it has not).
 */
import type { Command } from "commander";
import type { ResponseHeader } from "../server/etcd-types";
import type { Run } from "./cmd-kv";
import type { CommandContext } from "./context";
import { CtlError, ExitCode } from "./errors";
import { goJson } from "./go-json";
import { goQuote } from "./go-format";
import { prefixEnd } from "./kv-ops";
import { fieldsHeader, unsupportedFormat } from "./print-kv";

interface HeaderOnly {
  header: ResponseHeader;
}
interface Permission {
  permType: string;
  key: Buffer;
  range_end: Buffer;
}
interface RoleGetResponse extends HeaderOnly {
  perm: Permission[];
}
interface UserGetResponse extends HeaderOnly {
  roles: string[];
}
interface UserListResponse extends HeaderOnly {
  users: string[];
}
interface RoleListResponse extends HeaderOnly {
  roles: string[];
}

const ROOT_ROLE_NOT_EXIST = "etcdserver: root user does not have root role";
const PERM_TYPES: Readonly<Record<string, string>> = { READ: "READ", WRITE: "WRITE", READWRITE: "READWRITE" };

const bool = (v: unknown, def: boolean): boolean => (v === undefined ? def : v !== false);

/**
 * Prints one auth response: `simple` as etcdctl's printer_simple, `json` as the pb response,
 * `fields` with the header (and the extra lines `fields` gives), anything else unsupported.
 * Like etcdctl, the call has already been made when an unsupported format is refused.
 */
function print(ctx: CommandContext, pbType: string, r: HeaderOnly, simple: () => string, fieldsExtra?: () => string): void {
  switch (ctx.globals.writeOut) {
    case "simple":
      ctx.io.out(simple());
      return;
    case "json":
      ctx.io.out(goJson(`etcdserverpb.${pbType}`, r) + "\n");
      return;
    case "fields":
      ctx.io.out(fieldsHeader(r.header) + (fieldsExtra ? fieldsExtra() : ""));
      return;
    default:
      throw unsupportedFormat(ctx.globals.writeOut);
  }
}

/** etcdctl has no `fields` form of these (user get, user list): the unsupported printer. */
function printNoFields(ctx: CommandContext, pbType: string, r: HeaderOnly, simple: () => string): void {
  if (ctx.globals.writeOut === "fields") throw unsupportedFormat("fields");
  print(ctx, pbType, r, simple);
}

const str = (b: Buffer): string => b.toString("utf8");

/** printer_simple.go's RoleGet: read then write permissions, ranges and prefixes spelled out. */
function roleText(role: string, r: RoleGetResponse): string {
  const range = (p: Permission): string => {
    const key = str(p.key);
    const end = str(p.range_end);
    let s = end !== "\x00" ? `\t[${key}, ${end})` : `\t[${key}, <open ended>`;
    if (str(prefixEnd(p.key)) === end) s += ` (prefix ${key})`;
    return s + "\n";
  };
  const lines = (types: string[]): string =>
    r.perm
      .filter((p) => types.includes(p.permType))
      .map((p) => (p.range_end.length === 0 ? `\t${str(p.key)}\n` : range(p)))
      .join("");
  return `Role ${role}\nKV Read:\n${lines(["READ", "READWRITE"])}KV Write:\n${lines(["WRITE", "READWRITE"])}`;
}

function roleFields(r: RoleGetResponse): string {
  return r.perm.map((p) => `"PermType" :  ${p.permType}\n"Key" : ${goQuote(str(p.key))}\n"RangeEnd" : ${goQuote(str(p.range_end))}\n`).join("");
}

/** Go's fmt.Scanf("%s"): the first space-separated word of the first line of stdin. */
function scanWord(ctx: CommandContext): string {
  const line = ctx.stdinLine() ?? "";
  return line.replace(/\r$/, "").trimStart().split(/[ \t]/)[0] ?? "";
}

/** readPasswordInteractive: asked twice (prompts on stdout, answers read line by line from stdin). */
function askPassword(ctx: CommandContext, name: string): string {
  ctx.io.out(`Password of ${name}: `);
  const p1 = (ctx.stdinLine() ?? "").replace(/\r$/, "");
  if (p1 === "") throw new CtlError(ExitCode.BadArgs, "empty password");
  ctx.io.out(`Type password of ${name} again for confirmation: `);
  const p2 = (ctx.stdinLine() ?? "").replace(/\r$/, "");
  if (p1 !== p2) throw new CtlError(ExitCode.BadArgs, "given passwords are different");
  return p1;
}

/** role_command.go's permRange / rangeEndFromPermFlags. */
function permRange(args: string[], o: Record<string, unknown>): { key: Buffer; rangeEnd: Buffer } {
  const prefix = o["prefix"] === true;
  const fromKey = o["fromKey"] === true;
  const key = args[0]!;
  if (key === "") {
    if (prefix && fromKey) throw new CtlError(ExitCode.BadArgs, "--from-key and --prefix flags are mutually exclusive");
    return { key: Buffer.from([0]), rangeEnd: prefix || fromKey ? Buffer.from([0]) : Buffer.alloc(0) };
  }
  if (args.length === 1) {
    if (prefix) {
      if (fromKey) throw new CtlError(ExitCode.BadArgs, "--from-key and --prefix flags are mutually exclusive");
      return { key: Buffer.from(key), rangeEnd: prefixEnd(Buffer.from(key)) };
    }
    return { key: Buffer.from(key), rangeEnd: fromKey ? Buffer.from([0]) : Buffer.alloc(0) };
  }
  if (prefix) throw new CtlError(ExitCode.BadArgs, "unexpected endkey argument with --prefix flag");
  if (fromKey) throw new CtlError(ExitCode.BadArgs, "unexpected endkey argument with --from-key flag");
  return { key: Buffer.from(key), rangeEnd: Buffer.from(args[1]!) };
}

function registerUser(program: Command, run: Run): void {
  const user = program.command("user").description("User related commands");

  user
    .command("add")
    .argument("[args...]")
    .description("Adds a new user")
    .option("--interactive", "Read password from stdin instead of interactive terminal")
    .option("--no-interactive")
    .option("--new-user-password <password>", "Supply password from the command line flag")
    .option("--no-password", "Create a user without password (CN based auth only)")
    .action(
      run(async (ctx, args, o) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "user add command requires user name as its argument");
        const arg = args[0]!;
        // commander's `--no-password` sets `password: false` (default true).
        const noPassword = o["password"] === false;
        let name = arg;
        let password = "";
        if (!noPassword) {
          const fromFlag = typeof o["newUserPassword"] === "string" ? o["newUserPassword"] : "";
          const colon = arg.indexOf(":");
          if (fromFlag !== "") password = fromFlag;
          else if (colon === -1) password = bool(o["interactive"], true) ? askPassword(ctx, arg) : scanWord(ctx);
          else {
            name = arg.slice(0, colon);
            password = arg.slice(colon + 1);
            if (name === "") throw new CtlError(ExitCode.BadArgs, "empty user name is not allowed");
          }
        }
        const r = await ctx.conn().unary<object, HeaderOnly>("Auth", "UserAdd", { name, password, options: { no_password: noPassword } }, undefined, 1 << 30);
        print(ctx, "AuthUserAddResponse", r, () => `User ${name} created\n`);
      }),
    );

  user
    .command("delete")
    .argument("[args...]")
    .description("Deletes a user")
    .action(
      run(async (ctx, args) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "user delete command requires user name as its argument");
        const r = await ctx.conn().unary<object, HeaderOnly>("Auth", "UserDelete", { name: args[0] }, undefined, 1 << 30);
        print(ctx, "AuthUserDeleteResponse", r, () => `User ${args[0]!} deleted\n`);
      }),
    );

  user
    .command("get")
    .argument("[args...]")
    .description("Gets detailed information of a user")
    .option("--detail", "Show permissions of roles granted to the user")
    .action(
      run(async (ctx, args, o) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "user get command requires user name as its argument");
        const name = args[0]!;
        const r = await ctx.conn().unary<object, UserGetResponse>("Auth", "UserGet", { name }, undefined, 1 << 30);
        if (o["detail"] === true) {
          // user_command.go prints this line itself, then each role with the role printer.
          ctx.io.out(`User: ${name}\n`);
          for (const role of r.roles) {
            ctx.io.out("\n");
            const rr = await ctx.conn().unary<object, RoleGetResponse>("Auth", "RoleGet", { role }, undefined, 1 << 30);
            print(ctx, "AuthRoleGetResponse", rr, () => roleText(role, rr), () => roleFields(rr));
          }
          return;
        }
        printNoFields(ctx, "AuthUserGetResponse", r, () => `User: ${name}\nRoles:${r.roles.map((x) => ` ${x}`).join("")}\n`);
      }),
    );

  user
    .command("list")
    .argument("[args...]")
    .description("Lists all users")
    .action(
      run(async (ctx, args) => {
        if (args.length !== 0) throw new CtlError(ExitCode.BadArgs, "user list command requires no arguments");
        const r = await ctx.conn().unary<object, UserListResponse>("Auth", "UserList", {}, undefined, 1 << 30);
        printNoFields(ctx, "AuthUserListResponse", r, () => r.users.map((u) => `${u}\n`).join(""));
      }),
    );

  user
    .command("passwd")
    .argument("[args...]")
    .description("Changes password of user")
    .option("--interactive", "If true, read password from stdin instead of interactive terminal")
    .option("--no-interactive")
    .action(
      run(async (ctx, args, o) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "user passwd command requires user name as its argument");
        const password = bool(o["interactive"], true) ? askPassword(ctx, args[0]!) : scanWord(ctx);
        const r = await ctx.conn().unary<object, HeaderOnly>("Auth", "UserChangePassword", { name: args[0], password }, undefined, 1 << 30);
        print(ctx, "AuthUserChangePasswordResponse", r, () => "Password updated\n");
      }),
    );

  user
    .command("grant-role")
    .argument("[args...]")
    .description("Grants a role to a user")
    .action(
      run(async (ctx, args) => {
        if (args.length !== 2) throw new CtlError(ExitCode.BadArgs, "user grant command requires user name and role name as its argument");
        const r = await ctx.conn().unary<object, HeaderOnly>("Auth", "UserGrantRole", { user: args[0], role: args[1] }, undefined, 1 << 30);
        print(ctx, "AuthUserGrantRoleResponse", r, () => `Role ${args[1]!} is granted to user ${args[0]!}\n`);
      }),
    );

  user
    .command("revoke-role")
    .argument("[args...]")
    .description("Revokes a role from a user")
    .action(
      run(async (ctx, args) => {
        if (args.length !== 2) throw new CtlError(ExitCode.BadArgs, "user revoke-role requires user name and role name as its argument");
        const r = await ctx.conn().unary<object, HeaderOnly>("Auth", "UserRevokeRole", { name: args[0], role: args[1] }, undefined, 1 << 30);
        print(ctx, "AuthUserRevokeRoleResponse", r, () => `Role ${args[1]!} is revoked from user ${args[0]!}\n`);
      }),
    );
}

function registerRole(program: Command, run: Run): void {
  const role = program.command("role").description("Role related commands");

  role
    .command("add")
    .argument("[args...]")
    .description("Adds a new role")
    .action(
      run(async (ctx, args) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "role add command requires role name as its argument");
        const r = await ctx.conn().unary<object, HeaderOnly>("Auth", "RoleAdd", { name: args[0] }, undefined, 1 << 30);
        print(ctx, "AuthRoleAddResponse", r, () => `Role ${args[0]!} created\n`);
      }),
    );

  role
    .command("delete")
    .argument("[args...]")
    .description("Deletes a role")
    .action(
      run(async (ctx, args) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "role delete command requires role name as its argument");
        const r = await ctx.conn().unary<object, HeaderOnly>("Auth", "RoleDelete", { role: args[0] }, undefined, 1 << 30);
        print(ctx, "AuthRoleDeleteResponse", r, () => `Role ${args[0]!} deleted\n`);
      }),
    );

  role
    .command("get")
    .argument("[args...]")
    .description("Gets detailed information of a role")
    .action(
      run(async (ctx, args) => {
        if (args.length !== 1) throw new CtlError(ExitCode.BadArgs, "role get command requires role name as its argument");
        const name = args[0]!;
        const r = await ctx.conn().unary<object, RoleGetResponse>("Auth", "RoleGet", { role: name }, undefined, 1 << 30);
        print(ctx, "AuthRoleGetResponse", r, () => roleText(name, r), () => roleFields(r));
      }),
    );

  role
    .command("list")
    .argument("[args...]")
    .description("Lists all roles")
    .action(
      run(async (ctx, args) => {
        if (args.length !== 0) throw new CtlError(ExitCode.BadArgs, "role list command requires no arguments");
        const r = await ctx.conn().unary<object, RoleListResponse>("Auth", "RoleList", {}, undefined, 1 << 30);
        print(
          ctx,
          "AuthRoleListResponse",
          r,
          () => r.roles.map((x) => `${x}\n`).join(""),
          () => `"Roles" :${r.roles.map((x) => ` ${goQuote(x)}`).join("")}\n`,
        );
      }),
    );

  role
    .command("grant-permission")
    .argument("[args...]")
    .description("Grants a key to a role")
    .option("--prefix", "grant a prefix permission")
    .option("--from-key", "grant a permission of keys that are greater than or equal to the given key using byte compare")
    .action(
      run(async (ctx, args, o) => {
        if (args.length < 3) throw new CtlError(ExitCode.BadArgs, "role grant command requires role name, permission type, and key [endkey] as its argument");
        const permType = PERM_TYPES[args[1]!.toUpperCase()];
        if (permType === undefined) throw new CtlError(ExitCode.BadArgs, `invalid permission type: ${args[1]!}`);
        const { key, rangeEnd } = permRange(args.slice(2), o);
        const perm = { permType, key, range_end: rangeEnd };
        const r = await ctx.conn().unary<object, HeaderOnly>("Auth", "RoleGrantPermission", { name: args[0], perm }, undefined, 1 << 30);
        print(ctx, "AuthRoleGrantPermissionResponse", r, () => `Role ${args[0]!} updated\n`);
      }),
    );

  role
    .command("revoke-permission")
    .argument("[args...]")
    .description("Revokes a key from a role")
    .option("--prefix", "revoke a prefix permission")
    .option("--from-key", "revoke a permission of keys that are greater than or equal to the given key using byte compare")
    .action(
      run(async (ctx, args, o) => {
        if (args.length < 2) throw new CtlError(ExitCode.BadArgs, "role revoke-permission command requires role name and key [endkey] as its argument");
        const { key, rangeEnd } = permRange(args.slice(1), o);
        const r = await ctx.conn().unary<object, HeaderOnly>("Auth", "RoleRevokePermission", { role: args[0], key, range_end: rangeEnd }, undefined, 1 << 30);
        print(ctx, "AuthRoleRevokePermissionResponse", r, () => {
          // etcdctl prints the key as typed (args[1]) and the computed range end.
          const k = args[1]!;
          const end = str(rangeEnd);
          if (end === "") return `Permission of key ${k} is revoked from role ${args[0]!}\n`;
          if (end !== "\x00") return `Permission of range [${k}, ${end}) is revoked from role ${args[0]!}\n`;
          return `Permission of range [${k}, <open ended> is revoked from role ${args[0]!}\n`;
        });
      }),
    );
}

function registerAuthToggle(program: Command, run: Run): void {
  const auth = program.command("auth").description("Enable or disable authentication");

  auth
    .command("enable")
    .argument("[args...]")
    .description("Enables authentication")
    .action(
      run(async (ctx, args) => {
        if (args.length !== 0) throw new CtlError(ExitCode.BadArgs, "auth enable command does not accept any arguments");
        // auth_command.go: a root user without the root role gets it, then enabling is retried.
        const deadline = Date.now() + ctx.globals.commandTimeoutMs;
        const left = (): number => Math.max(1, deadline - Date.now());
        for (;;) {
          try {
            await ctx.conn().unary<object, HeaderOnly>("Auth", "AuthEnable", {}, undefined, left());
            break;
          } catch (err) {
            if (!(err instanceof CtlError) || err.message !== ROOT_ROLE_NOT_EXIST) throw err;
            await ctx.conn().unary<object, HeaderOnly>("Auth", "RoleAdd", { name: "root" }, undefined, left());
            await ctx.conn().unary<object, HeaderOnly>("Auth", "UserGrantRole", { user: "root", role: "root" }, undefined, left());
          }
        }
        ctx.io.out("Authentication Enabled\n");
      }),
    );

  auth
    .command("disable")
    .argument("[args...]")
    .description("Disables authentication")
    .action(
      run(async (ctx, args) => {
        if (args.length !== 0) throw new CtlError(ExitCode.BadArgs, "auth disable command does not accept any arguments");
        await ctx.conn().unary<object, HeaderOnly>("Auth", "AuthDisable", {});
        ctx.io.out("Authentication Disabled\n");
      }),
    );
}

export function registerAuth(program: Command, run: Run): void {
  registerUser(program, run);
  registerRole(program, run);
  registerAuthToggle(program, run);
}
