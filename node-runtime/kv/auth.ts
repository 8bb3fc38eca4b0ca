/**
 * etcd v3's auth store as replicated state: whether auth is enabled, the auth revision, users
 * (bcrypt password hashes, never passwords) and roles with their key-range permissions.
 * Mutations arrive through the raft log (AuthCommand) and are applied deterministically on
 * every member; permission checks follow etcd 3.4's auth/store.go and range_perm_cache.go,
 * including the byte-affine intervals (an empty end means "to the end of the key space").
 *
 * Password hashing and checking happen outside (the server hashes before proposing, so every
 * member stores the same hash and no log entry carries a password). Tokens are not state of
 * the store: the server keeps them per member.
 */
import { KvError } from './errors';

export type PermType = 'READ' | 'WRITE' | 'READWRITE';
export const PERM_TYPES: readonly PermType[] = ['READ', 'WRITE', 'READWRITE'];

export interface AuthPermission {
  permType: PermType;
  /** latin1 strings, like keys everywhere in the store. */
  key: string;
  rangeEnd: string;
}

export interface AuthUser {
  name: string;
  /** bcrypt hash ('' for a no-password user). */
  password: string;
  /** Sorted, as etcd keeps them. */
  roles: string[];
  noPassword: boolean;
}

export interface AuthRole {
  name: string;
  /** Sorted by key, as etcd keeps them. */
  perms: AuthPermission[];
}

/** Who sent a request, as the API layer resolved it: etcd's AuthInfo. */
export interface RequestAuth {
  username: string;
  /** The auth revision the identity was resolved at (0 = none). */
  revision: number;
}

export type AuthRequest =
  | { op: 'enable' }
  | { op: 'disable' }
  /** The token becomes `${prefix}.${raft index}`, as etcd's simple token. */
  | { op: 'authenticate'; name: string; prefix: string }
  | { op: 'userAdd'; name: string; hash: string; noPassword: boolean }
  | { op: 'userDelete'; name: string }
  | { op: 'userChangePassword'; name: string; hash: string }
  | { op: 'userGrantRole'; user: string; role: string }
  | { op: 'userRevokeRole'; name: string; role: string }
  | { op: 'roleAdd'; name: string }
  | { op: 'roleDelete'; role: string }
  | { op: 'roleGrantPermission'; name: string; perm: AuthPermission }
  | { op: 'roleRevokePermission'; role: string; key: string; rangeEnd: string };

export type AuthOp = AuthRequest['op'];
export const AUTH_OPS: readonly AuthOp[] = [
  'enable',
  'disable',
  'authenticate',
  'userAdd',
  'userDelete',
  'userChangePassword',
  'userGrantRole',
  'userRevokeRole',
  'roleAdd',
  'roleDelete',
  'roleGrantPermission',
  'roleRevokePermission',
];

/** What applying an auth command tells the member (tokens are its business, not the store's). */
export interface AuthApplyResult {
  /** Set by authenticate. */
  token?: string;
  /** The user whose tokens are no longer valid (deleted, password changed). */
  invalidateUser?: string;
  /** Auth was disabled: every token is void. */
  disabled?: boolean;
}

export interface AuthState {
  enabled: boolean;
  revision: number;
  users: AuthUser[];
  roles: AuthRole[];
}

const ROOT = 'root';

export const AUTH_MSG = {
  rootUserNotExist: 'etcdserver: root user does not exist',
  rootRoleNotExist: 'etcdserver: root user does not have root role',
  userAlreadyExist: 'etcdserver: user name already exists',
  userEmpty: 'etcdserver: user name is empty',
  userNotFound: 'etcdserver: user name not found',
  roleAlreadyExist: 'etcdserver: role name already exists',
  roleNotFound: 'etcdserver: role name not found',
  roleEmpty: 'etcdserver: role name is empty',
  authFailed: 'etcdserver: authentication failed, invalid user ID or password',
  permissionDenied: 'etcdserver: permission denied',
  roleNotGranted: 'etcdserver: role is not granted to the user',
  permissionNotGranted: 'etcdserver: permission is not granted to the role',
  authNotEnabled: 'etcdserver: authentication is not enabled',
  invalidAuthToken: 'etcdserver: invalid auth token',
  invalidAuthMgmt: 'etcdserver: invalid auth management',
  authOldRevision: 'etcdserver: revision of auth store is old',
} as const;

/** etcd's rpctypes auth errors: gRPC code and exact message. */
export const AuthErrors = {
  rootUserNotExist: () => new KvError('FAILED_PRECONDITION', AUTH_MSG.rootUserNotExist),
  rootRoleNotExist: () => new KvError('FAILED_PRECONDITION', AUTH_MSG.rootRoleNotExist),
  userAlreadyExist: () => new KvError('FAILED_PRECONDITION', AUTH_MSG.userAlreadyExist),
  userEmpty: () => new KvError('INVALID_ARGUMENT', AUTH_MSG.userEmpty),
  userNotFound: () => new KvError('FAILED_PRECONDITION', AUTH_MSG.userNotFound),
  roleAlreadyExist: () => new KvError('FAILED_PRECONDITION', AUTH_MSG.roleAlreadyExist),
  roleNotFound: () => new KvError('FAILED_PRECONDITION', AUTH_MSG.roleNotFound),
  roleEmpty: () => new KvError('INVALID_ARGUMENT', AUTH_MSG.roleEmpty),
  authFailed: () => new KvError('INVALID_ARGUMENT', AUTH_MSG.authFailed),
  permissionDenied: () => new KvError('PERMISSION_DENIED', AUTH_MSG.permissionDenied),
  roleNotGranted: () => new KvError('FAILED_PRECONDITION', AUTH_MSG.roleNotGranted),
  permissionNotGranted: () => new KvError('FAILED_PRECONDITION', AUTH_MSG.permissionNotGranted),
  authNotEnabled: () => new KvError('FAILED_PRECONDITION', AUTH_MSG.authNotEnabled),
  invalidAuthToken: () => new KvError('UNAUTHENTICATED', AUTH_MSG.invalidAuthToken),
  invalidAuthMgmt: () => new KvError('INVALID_ARGUMENT', AUTH_MSG.invalidAuthMgmt),
  authOldRevision: () => new KvError('INVALID_ARGUMENT', AUTH_MSG.authOldRevision),
};

// ------------------------------------------------------------------ byte-affine intervals

/** [begin, end) over latin1 keys; '' stands for +infinity at either end (etcd's BytesAffineComparable). */
interface Ivl {
  begin: string;
  end: string;
}

function cmp(a: string, b: string): number {
  if (a.length === 0) return b.length === 0 ? 0 : 1;
  if (b.length === 0) return -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function point(key: string): Ivl {
  return { begin: key, end: key + '\0' };
}

/** etcd's Interval.Compare(...) == 0, with q the query. */
function overlaps(q: Ivl, n: Ivl): boolean {
  if (cmp(q.begin, n.begin) < 0 && cmp(q.end, n.begin) <= 0) return false;
  return cmp(q.begin, n.end) < 0;
}

class PermSet {
  /** Sorted by begin (stable), as an interval tree visits them. */
  private readonly ivls: Ivl[] = [];

  add(i: Ivl): void {
    let at = this.ivls.length;
    while (at > 0 && cmp(this.ivls[at - 1].begin, i.begin) > 0) at--;
    this.ivls.splice(at, 0, i);
  }

  intersects(q: Ivl): boolean {
    return this.ivls.some((n) => overlaps(q, n));
  }

  /** etcd's intervalTree.Contains: the intervals overlapping q cover it without a gap. */
  contains(q: Ivl): boolean {
    let minBegin: string | undefined;
    let maxEnd = '';
    for (const n of this.ivls) {
      if (!overlaps(q, n)) continue;
      if (minBegin === undefined) {
        minBegin = n.begin;
        maxEnd = n.end;
        continue;
      }
      if (cmp(maxEnd, n.begin) < 0) return false;
      if (cmp(n.end, maxEnd) > 0) maxEnd = n.end;
    }
    return minBegin !== undefined && cmp(maxEnd, q.end) >= 0 && cmp(minBegin, q.begin) <= 0;
  }
}

interface MergedPerms {
  read: PermSet;
  write: PermSet;
}

// ------------------------------------------------------------------ the store

export class AuthStore {
  private enabledFlag = false;
  /** etcd starts its auth revision at 1 when it creates the auth buckets. */
  private rev = 1;
  private readonly users = new Map<string, AuthUser>();
  private readonly roles = new Map<string, AuthRole>();
  private permCache = new Map<string, MergedPerms>();

  get enabled(): boolean {
    return this.enabledFlag;
  }

  get revision(): number {
    return this.rev;
  }

  /** Nothing was ever configured: the snapshot can keep its older format. */
  get pristine(): boolean {
    return !this.enabledFlag && this.rev === 1 && this.users.size === 0 && this.roles.size === 0;
  }

  user(name: string): AuthUser | undefined {
    return this.users.get(name);
  }

  role(name: string): AuthRole | undefined {
    return this.roles.get(name);
  }

  /** Users by name, in byte order (etcd lists its bucket in key order). */
  userNames(): string[] {
    return [...this.users.keys()].sort(byteOrder);
  }

  roleNames(): string[] {
    return [...this.roles.keys()].sort(byteOrder);
  }

  hasRole(user: string, role: string): boolean {
    return this.users.get(user)?.roles.includes(role) ?? false;
  }

  // ---------------------------------------------------------------- apply

  /** Applies one auth command; `index` is the raft index (simple tokens carry it). Throws KvError. */
  apply(index: number, req: AuthRequest, auth: RequestAuth | undefined): AuthApplyResult {
    if (req.op !== 'authenticate') this.checkAdmin(auth);
    switch (req.op) {
      case 'enable':
        return this.enable();
      case 'disable':
        if (!this.enabledFlag) return {};
        this.enabledFlag = false;
        this.commit();
        return { disabled: true };
      case 'authenticate': {
        if (!this.enabledFlag) throw AuthErrors.authNotEnabled();
        const u = this.users.get(req.name);
        if (!u || u.noPassword) throw AuthErrors.authFailed();
        return { token: `${req.prefix}.${index}` };
      }
      case 'userAdd': {
        if (req.name.length === 0) throw AuthErrors.userEmpty();
        if (this.users.has(req.name)) throw AuthErrors.userAlreadyExist();
        this.users.set(req.name, { name: req.name, password: req.noPassword ? '' : req.hash, roles: [], noPassword: req.noPassword });
        this.commit();
        return {};
      }
      case 'userDelete': {
        if (this.enabledFlag && req.name === ROOT) throw AuthErrors.invalidAuthMgmt();
        if (!this.users.delete(req.name)) throw AuthErrors.userNotFound();
        this.commit();
        return { invalidateUser: req.name };
      }
      case 'userChangePassword': {
        const u = this.users.get(req.name);
        if (!u) throw AuthErrors.userNotFound();
        this.users.set(req.name, { ...u, password: req.hash });
        this.commit();
        return { invalidateUser: req.name };
      }
      case 'userGrantRole': {
        const u = this.users.get(req.user);
        if (!u) throw AuthErrors.userNotFound();
        if (req.role !== ROOT && !this.roles.has(req.role)) throw AuthErrors.roleNotFound();
        if (u.roles.includes(req.role)) return {};
        this.users.set(req.user, { ...u, roles: [...u.roles, req.role].sort(byteOrder) });
        this.commit();
        return {};
      }
      case 'userRevokeRole': {
        if (this.enabledFlag && req.name === ROOT && req.role === ROOT) throw AuthErrors.invalidAuthMgmt();
        const u = this.users.get(req.name);
        if (!u) throw AuthErrors.userNotFound();
        const roles = u.roles.filter((r) => r !== req.role);
        if (roles.length === u.roles.length) throw AuthErrors.roleNotGranted();
        this.users.set(req.name, { ...u, roles });
        this.commit();
        return {};
      }
      case 'roleAdd': {
        if (req.name.length === 0) throw AuthErrors.roleEmpty();
        if (this.roles.has(req.name)) throw AuthErrors.roleAlreadyExist();
        this.roles.set(req.name, { name: req.name, perms: [] });
        this.commit();
        return {};
      }
      case 'roleDelete': {
        if (this.enabledFlag && req.role === ROOT) throw AuthErrors.invalidAuthMgmt();
        if (!this.roles.delete(req.role)) throw AuthErrors.roleNotFound();
        for (const u of this.users.values()) {
          if (u.roles.includes(req.role)) this.users.set(u.name, { ...u, roles: u.roles.filter((r) => r !== req.role) });
        }
        this.commit();
        return {};
      }
      case 'roleGrantPermission': {
        const role = this.roles.get(req.name);
        if (!role) throw AuthErrors.roleNotFound();
        const perms = role.perms.map((p) => ({ ...p }));
        const same = perms.find((p) => p.key === req.perm.key && p.rangeEnd === req.perm.rangeEnd);
        if (same) same.permType = req.perm.permType;
        else {
          perms.push({ ...req.perm });
          perms.sort((a, b) => byteOrder(a.key, b.key));
        }
        this.roles.set(role.name, { name: role.name, perms });
        this.commit();
        return {};
      }
      case 'roleRevokePermission': {
        const role = this.roles.get(req.role);
        if (!role) throw AuthErrors.roleNotFound();
        const perms = role.perms.filter((p) => p.key !== req.key || p.rangeEnd !== req.rangeEnd);
        if (perms.length === role.perms.length) throw AuthErrors.permissionNotGranted();
        this.roles.set(role.name, { name: role.name, perms });
        this.commit();
        return {};
      }
    }
  }

  private enable(): AuthApplyResult {
    if (this.enabledFlag) return {};
    const root = this.users.get(ROOT);
    if (!root) throw AuthErrors.rootUserNotExist();
    if (!root.roles.includes(ROOT)) throw AuthErrors.rootRoleNotExist();
    // etcd does not advance the auth revision on enable (only on disable).
    this.enabledFlag = true;
    return {};
  }

  private commit(): void {
    this.rev++;
    this.permCache = new Map();
  }

  // ---------------------------------------------------------------- checks

  /** etcd's IsAdminPermitted: with auth on, only a user holding the root role. */
  checkAdmin(auth: RequestAuth | undefined): void {
    if (!this.enabledFlag) return;
    if (!auth || auth.username === '') throw AuthErrors.userEmpty();
    const u = this.users.get(auth.username);
    if (!u) throw AuthErrors.userNotFound();
    if (!u.roles.includes(ROOT)) throw AuthErrors.permissionDenied();
  }

  isAdmin(auth: RequestAuth | undefined): boolean {
    try {
      this.checkAdmin(auth);
      return true;
    } catch {
      return false;
    }
  }

  /** Read permission on [key, rangeEnd) (a single key when rangeEnd is empty). */
  checkRange(auth: RequestAuth | undefined, key: Buffer | string, rangeEnd?: Buffer | string): void {
    this.checkOp(auth, latin1(key), latin1(rangeEnd), 'read');
  }

  checkPut(auth: RequestAuth | undefined, key: Buffer | string): void {
    this.checkOp(auth, latin1(key), '', 'write');
  }

  checkDelete(auth: RequestAuth | undefined, key: Buffer | string, rangeEnd?: Buffer | string): void {
    this.checkOp(auth, latin1(key), latin1(rangeEnd), 'write');
  }

  /** etcd's isOpPermitted. */
  private checkOp(auth: RequestAuth | undefined, key: string, rangeEnd: string, kind: 'read' | 'write'): void {
    if (!this.enabledFlag) return;
    if (!auth || auth.revision === 0) throw AuthErrors.userEmpty();
    if (auth.revision < this.rev) throw AuthErrors.authOldRevision();
    const u = this.users.get(auth.username);
    if (!u) throw AuthErrors.permissionDenied();
    if (u.roles.includes(ROOT)) return;
    const perms = this.merged(u)[kind];
    let ok: boolean;
    if (rangeEnd.length === 0) ok = perms.intersects(point(key));
    else ok = perms.contains({ begin: key, end: rangeEnd === '\0' ? '' : rangeEnd });
    if (!ok) throw AuthErrors.permissionDenied();
  }

  private merged(u: AuthUser): MergedPerms {
    let m = this.permCache.get(u.name);
    if (m) return m;
    m = { read: new PermSet(), write: new PermSet() };
    for (const roleName of u.roles) {
      const role = this.roles.get(roleName);
      if (!role) continue;
      for (const p of role.perms) {
        const ivl: Ivl = p.rangeEnd.length !== 0 ? { begin: p.key, end: p.rangeEnd === '\0' ? '' : p.rangeEnd } : point(p.key);
        if (p.permType !== 'WRITE') m.read.add(ivl);
        if (p.permType !== 'READ') m.write.add(ivl);
      }
    }
    this.permCache.set(u.name, m);
    return m;
  }

  // ---------------------------------------------------------------- snapshot

  state(): AuthState {
    return {
      enabled: this.enabledFlag,
      revision: this.rev,
      users: this.userNames().map((n) => cloneUser(this.users.get(n)!)),
      roles: this.roleNames().map((n) => cloneRole(this.roles.get(n)!)),
    };
  }

  static fromState(s: AuthState): AuthStore {
    const a = new AuthStore();
    a.enabledFlag = s.enabled;
    a.rev = s.revision;
    for (const u of s.users) a.users.set(u.name, cloneUser(u));
    for (const r of s.roles) a.roles.set(r.name, cloneRole(r));
    return a;
  }
}

function cloneUser(u: AuthUser): AuthUser {
  return { ...u, roles: [...u.roles] };
}

function cloneRole(r: AuthRole): AuthRole {
  return { name: r.name, perms: r.perms.map((p) => ({ ...p })) };
}

function latin1(b: Buffer | string | undefined): string {
  if (b === undefined) return '';
  return typeof b === 'string' ? b : b.toString('latin1');
}

/** Byte order of UTF-8 names (what etcd's bbolt buckets and sort.Strings give). */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
