/**
 * The order push sends in while its input still arrives: an object waits only for what the
 * dependency order needs. Per patient, a rank (images, other objects, structure sets, plans,
 * doses and RT images, treatment records) waits for the lower ranks already known to be
 * acknowledged; and an object waits for the objects it references (a plan for its structure set,
 * a structure set for its images, a dose for its plan) when they are in the input, or may still
 * come: until they are acknowledged, or the input ends without them.
 *
 * Memory: the items queued, plus the UIDs of finished objects of the most recent patients (a
 * later object usually references its own patient's); an object whose reference was forgotten
 * waits for the input's end, never goes early.
 */

/** What the scheduler needs of an item. */
export interface SchedItem {
  uid: string;
  patient: string;
  rank: number;
  /** SOP Instance UIDs it references and must follow. */
  refs: string[];
  /** Not before this time (ms; a retry's back-off). */
  notBefore: number;
  /** Input order. */
  seq: number;
}

interface PatientState {
  /** Unfinished (queued or in flight) items per rank. */
  unfinished: number[];
  /** UIDs of this patient's finished objects (to forget them with the patient). */
  finished: string[];
}

/** How many finished UIDs are remembered before the oldest idle patients are forgotten. */
const FINISHED_LIMIT = 200_000;

/**
 * Hands out items in dependency order as they become ready.
 *
 * @example
 * ```ts
 * const s = new DependencyScheduler<Item>((uid) => alreadyAtPeer.has(uid));
 * s.add(item); s.inputEnded();
 * for (let it; (it = await s.next());) { await send(it); s.finish(it); }
 * ```
 */
export class DependencyScheduler<T extends SchedItem> {
  readonly #queue: T[] = [];
  readonly #patients = new Map<string, PatientState>();
  /** UID → items not finished yet (seen in the input). */
  readonly #pendingUids = new Map<string, number>();
  /** UIDs of finished objects of the patients remembered. */
  readonly #finished = new Set<string>();
  #inFlight = 0;
  /** Items handed out so far (for `room`'s bound). */
  #handedOut = 0;
  #ended = false;
  #stopped = false;
  #waiters: (() => void)[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #present: (uid: string) => boolean;
  readonly #now: () => number;

  /** `present(uid)`: the peer has the object already (an earlier run stored it). */
  constructor(present: (uid: string) => boolean = () => false, now: () => number = () => Date.now()) {
    this.#present = present;
    this.#now = now;
  }

  /** Items queued (not handed out). */
  get queued(): number {
    return this.#queue.length;
  }

  /** Items handed out and not finished. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Queued items that could go now (their back-off aside). Only they count against read-ahead:
   * an item that waits (for an object not read yet, or for one that waits itself) must not keep
   * the reader from reading what it waits for.
   */
  get readyCount(): number {
    return this.#queue.filter((it) => this.#ready(it)).length;
  }

  #state(patient: string): PatientState {
    let p = this.#patients.get(patient);
    if (!p) {
      this.#patients.set(patient, p = { unfinished: [], finished: [] });
    } else {
      // Recently used: last in the map's order (the oldest idle ones are forgotten first).
      this.#patients.delete(patient);
      this.#patients.set(patient, p);
    }
    return p;
  }

  #unseen(uid: string): boolean {
    return !this.#pendingUids.has(uid) && !this.#finished.has(uid) && !this.#present(uid);
  }

  /** True when `it` may go now (ignoring its back-off). */
  #ready(it: T, ignoreRefs = false): boolean {
    const p = this.#patients.get(it.patient)!;
    for (let r = 0; r < it.rank; r++) if ((p.unfinished[r] ?? 0) > 0) return false;
    if (ignoreRefs) return true;
    for (const u of it.refs) {
      if (u === it.uid) continue;
      if (this.#pendingUids.has(u)) return false;
      if (!this.#ended && this.#unseen(u)) return false;
    }
    return true;
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** A new item from the input. */
  add(it: T): void {
    const p = this.#state(it.patient);
    p.unfinished[it.rank] = (p.unfinished[it.rank] ?? 0) + 1;
    this.#pendingUids.set(it.uid, (this.#pendingUids.get(it.uid) ?? 0) + 1);
    this.#queue.push(it);
    this.#wake();
  }

  /** The input ended: references to objects never seen no longer hold anything back. */
  inputEnded(): void {
    this.#ended = true;
    this.#wake();
  }

  /** No more items are handed out (the rest: {@link DependencyScheduler.drain}). */
  stop(): void {
    this.#stopped = true;
    this.#wake();
  }

  /**
   * The next item that may go, waiting for one; undefined once nothing is left (input ended and
   * every item finished) or after `stop`.
   */
  async next(): Promise<T | undefined> {
    for (;;) {
      if (this.#stopped) return undefined;
      const now = this.#now();
      let soonest = Infinity;
      let pick = -1;
      for (let i = 0; i < this.#queue.length; i++) {
        const it = this.#queue[i];
        if (!this.#ready(it)) continue;
        if (it.notBefore > now) {
          soonest = Math.min(soonest, it.notBefore);
          continue;
        }
        pick = i;
        break;
      }
      if (pick < 0 && this.#ended && this.#inFlight === 0 && this.#queue.length > 0 && soonest === Infinity) {
        // Nothing can go and nothing will finish: references in a circle. The first by rank goes.
        const order = [...this.#queue.keys()].sort((a, b) => this.#queue[a].rank - this.#queue[b].rank || this.#queue[a].seq - this.#queue[b].seq);
        pick = order.find((i) => this.#ready(this.#queue[i], true) && this.#queue[i].notBefore <= now) ?? order[0];
      }
      if (pick >= 0) {
        const [it] = this.#queue.splice(pick, 1);
        this.#inFlight++;
        this.#handedOut++;
        return it;
      }
      if (this.#ended && this.#queue.length === 0 && this.#inFlight === 0) return undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        if (soonest !== Infinity && !this.#timer) {
          this.#timer = setTimeout(() => {
            this.#timer = undefined;
            this.#wake();
          }, Math.max(1, soonest - now));
        }
      });
    }
  }

  /** An item handed out is done (acknowledged, failed, or held back). */
  finish(it: T): void {
    this.#inFlight--;
    const p = this.#state(it.patient);
    p.unfinished[it.rank]--;
    const n = (this.#pendingUids.get(it.uid) ?? 1) - 1;
    if (n <= 0) this.#pendingUids.delete(it.uid);
    else this.#pendingUids.set(it.uid, n);
    if (!this.#finished.has(it.uid)) {
      this.#finished.add(it.uid);
      p.finished.push(it.uid);
    }
    this.#forget();
    this.#wake();
  }

  /** An item handed out goes back to wait until `notBefore` (a retry). */
  retryLater(it: T, notBefore: number): void {
    this.#inFlight--;
    it.notBefore = notBefore;
    this.#queue.push(it);
    this.#queue.sort((a, b) => a.seq - b.seq);
    this.#wake();
  }

  /** Takes every queued item out (unsent: the run stops). */
  drain(): T[] {
    const out = this.#queue.splice(0);
    for (const it of out) {
      const p = this.#state(it.patient);
      p.unfinished[it.rank]--;
      this.#pendingUids.delete(it.uid);
    }
    this.#wake();
    return out;
  }

  /** Resolves when fewer than `limit` items could go now (or the run stopped): the reader's read-ahead. */
  async room(limit: number): Promise<void> {
    // Counting the ready items costs a pass over the queue. After a count of `ready`, at most as
    // many items as were handed out since can have stopped being ready (adds and finishes only
    // add ready ones): while that bound stays at the limit, nothing needs counting again.
    let ready = 0, handedOutAtCount = 0;
    while (!this.#stopped && this.#queue.length >= limit) {
      if (ready - (this.#handedOut - handedOutAtCount) < limit) {
        ready = this.readyCount;
        handedOutAtCount = this.#handedOut;
        if (ready < limit) return;
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** Forgets the oldest patients with nothing unfinished once too many UIDs are remembered. */
  #forget(): void {
    if (this.#finished.size <= FINISHED_LIMIT) return;
    for (const [key, p] of this.#patients) {
      if (this.#finished.size <= FINISHED_LIMIT / 2) break;
      if (p.unfinished.some((n) => n > 0)) continue;
      for (const u of p.finished) this.#finished.delete(u);
      this.#patients.delete(key);
    }
  }
}
