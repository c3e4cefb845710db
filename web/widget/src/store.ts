// Persistence in localStorage, one key per widget id: the visitor, the conversation, the last seq
// seen, the message history with the queue of unsent messages, the unread count and the last
// configuration (so a reload is themed at once).

import type { WidgetConfig } from './proto';

/** The delivery state of one of the visitor's messages. */
export type Status = 'pending' | 'sent' | 'failed';

/** One message as the widget keeps it. */
export interface Msg {
  /** Local key: the client_message_id when there is one, else the server id. */
  k: string;
  cid?: string;
  id?: string;
  seq?: number;
  text: string;
  /** The author's type; "contact" is the visitor. */
  a: string;
  /** Creation time, ms since the epoch. */
  at: number;
  /** Delivery state, for the visitor's messages. */
  st?: Status;
  /** Send attempts so far. */
  n?: number;
  /** Time by which an ack must arrive before a pending message counts as failed. */
  d?: number;
  /** Time of the next automatic retry. */
  r?: number;
  /** Refused for good (invalid or conflict): no automatic retry, only the button. */
  x?: boolean;
}

/** Everything the widget keeps for one widget id. */
export interface State {
  /** visitor_id */
  v?: string;
  /** conversation_id */
  c?: string;
  /** The last seq seen on the socket (resume after it). */
  s: number;
  m: Msg[];
  /** Messages received while the panel was closed. */
  u: number;
  /** The panel was open. */
  o?: boolean;
  cfg?: WidgetConfig;
}

/** Sent messages kept in history; unsent ones are always kept. */
export const KEEP = 200;

/** load reads the state, or a fresh one when there is none or it is unreadable. */
export function load(key: string): State {
  try {
    const raw = localStorage.getItem(key);
    const s = raw ? (JSON.parse(raw) as State) : null;
    if (s && typeof s === 'object' && Array.isArray(s.m)) {
      s.m = s.m.filter((m) => m && typeof m.k === 'string' && typeof m.text === 'string');
      s.s = typeof s.s === 'number' ? s.s : 0;
      s.u = typeof s.u === 'number' ? s.u : 0;
      return s;
    }
  } catch {
    // Storage disabled or corrupt: start afresh.
  }
  return { s: 0, m: [], u: 0 };
}

/** save writes the state; a full or disabled storage only loses persistence. */
export function save(key: string, s: State): void {
  try {
    localStorage.setItem(key, JSON.stringify(s));
  } catch {
    // Quota or privacy mode: keep working in memory.
  }
}
