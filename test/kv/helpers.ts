import { KvStore, KvStoreOptions } from '../../node-runtime/kv/store';
import type { KvApplyResult, ResponseOf } from '../../node-runtime/kv/store';
import type { KeyValue, KvCommand } from '../../node-runtime/kv/types';
import { KvError } from '../../node-runtime/kv/errors';

export const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** A store plus a raft-index counter, so tests read like a sequence of applied entries. */
export class Harness {
  index = 0;
  constructor(readonly store: KvStore = new KvStore()) {}

  static with(opts: Partial<KvStoreOptions>): Harness {
    return new Harness(new KvStore(opts));
  }

  apply<C extends KvCommand>(cmd: C): KvApplyResult<ResponseOf[C['type']]> {
    return this.store.apply(++this.index, cmd);
  }

  /** Applies and returns the response, failing the test on an error. */
  ok<C extends KvCommand>(cmd: C): ResponseOf[C['type']] {
    const r = this.apply(cmd);
    if (r.kind !== 'ok') throw new Error(`expected ok, got ${r.kind === 'error' ? r.error.message : r.kind}`);
    return r.response;
  }

  /** Applies and returns the error, failing the test on success. */
  err(cmd: KvCommand): KvError {
    const r = this.apply(cmd);
    if (r.kind !== 'error') throw new Error(`expected an error, got ${r.kind}`);
    return r.error;
  }

  put(key: string, value: string, lease = '0'): number {
    return this.ok({ type: 'put', req: { key: b(key), value: b(value), lease } }).header.revision;
  }

  del(key: string, rangeEnd?: string): number {
    return this.ok({ type: 'deleteRange', req: { key: b(key), range_end: rangeEnd === undefined ? undefined : b(rangeEnd) } }).deleted;
  }

  get(key: string, rangeEnd?: string): KeyValue[] {
    return this.store.range({ key: b(key), range_end: rangeEnd === undefined ? undefined : b(rangeEnd) }).kvs;
  }
}

export const keys = (kvs: KeyValue[]): string[] => kvs.map((kv) => kv.key.toString('latin1'));
export const values = (kvs: KeyValue[]): string[] => kvs.map((kv) => kv.value.toString('latin1'));

/** Runs fn and returns the KvError it throws. */
export function thrown(fn: () => unknown): KvError {
  try {
    fn();
  } catch (e) {
    if (e instanceof KvError) return e;
    throw e;
  }
  throw new Error('expected a KvError');
}
