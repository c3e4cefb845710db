// The widget's behaviour: configuration, visitor sessions, the socket with resume, the outgoing
// queue with acknowledgements, timeouts and retries, unread count and typing.

import { cleanConfig, DEFAULT_CONFIG } from './proto';
import type { ClientFrame, MessageFrame, ServerFrame, Session, WidgetConfig } from './proto';
import { KEEP, load, save } from './store';
import type { Msg, State } from './store';
import { View } from './view';

/** A message not acknowledged this long after it was (re)sent counts as failed. */
export const ACK_TIMEOUT = 8000;
const TYPING_EVERY = 3000;
const TYPING_SHOWN = 5000;
const TICK = 500;

/** backoff is an exponential delay with jitter: a random point in [d/2, d], d = min(cap, base·2ⁿ). */
export function backoff(n: number, base: number, cap: number): number {
  const d = Math.min(cap, base * 2 ** Math.min(n, 20));
  return d / 2 + (Math.random() * d) / 2;
}

/** Where the widget talks to and who it is. */
export interface Options {
  /** Origin of the Metachat server (the script's origin). */
  api: string;
  id: string;
  /** With identity verification: the tenant's user id and its HMAC, from the script tag. */
  userId?: string;
  userHash?: string;
}

const unacked = (m: Msg) => m.a === 'contact' && m.st !== 'sent';
const order = (x: Msg, y: Msg) => (x.seq ?? Infinity) - (y.seq ?? Infinity) || x.at - y.at;

/** Widget ties the state, the connection and the view together. */
export class Widget {
  private readonly key: string;
  private readonly st: State;
  private v?: View;
  private ws: WebSocket | null = null;
  private ready = false;
  private connecting = false;
  private started = false;
  /** A refusal that retrying cannot fix (unknown widget, origin not allowed): stop. */
  private dead = false;
  private fails = 0;
  private reconnectTimer = 0;
  private tickTimer = 0;
  private typingTimer = 0;
  private lastTyping = 0;
  private open = false;

  constructor(private readonly o: Options) {
    this.key = 'metachat:' + o.id;
    this.st = load(this.key);
    this.st.m.sort(order);
    for (const m of this.st.m) if (m.st === 'pending') m.d = Date.now() + ACK_TIMEOUT;
  }

  /** start fetches the configuration, shows the launcher and, for a known conversation, connects. */
  start(): void {
    if (this.st.cfg) this.mount(cleanConfig(this.st.cfg));
    void this.config(0);
    addEventListener('online', () => {
      if (this.started && !this.ws) {
        this.fails = 0;
        void this.connect();
      }
    });
  }

  private async config(n: number): Promise<void> {
    let c: WidgetConfig | undefined;
    let status = 0;
    try {
      const r = await fetch(`${this.o.api}/api/v1/widget/config?widget_id=${encodeURIComponent(this.o.id)}`, {
        credentials: 'omit',
      });
      status = r.status;
      if (r.ok) c = cleanConfig(await r.json());
    } catch {
      // Offline or the server is down: retry below.
    }
    if (c) {
      this.st.cfg = c;
      this.save();
      if (this.v) this.v.theme(c);
      else this.mount(c);
      return;
    }
    if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
      // Not a widget of this site: take the widget away and stop.
      this.dead = true;
      this.v?.host.remove();
      console.warn(`Metachat: widget ${this.o.id} is not available on this site (${status}).`);
      return;
    }
    if (!this.v) this.mount(DEFAULT_CONFIG);
    setTimeout(() => void this.config(n + 1), backoff(n, 2000, 60000));
  }

  private mount(c: WidgetConfig): void {
    const v = (this.v = new View(
      {
        toggle: (open) => this.toggle(open, true),
        send: (text) => this.send(text),
        retry: (k) => this.retry(k),
        typing: () => this.typing(),
      },
      this.o.id,
    ));
    v.theme(c);
    v.render(this.st.m);
    v.setUnread(this.st.u);
    const attach = () => (document.body || document.documentElement).append(v.host);
    if (document.body) attach();
    else addEventListener('DOMContentLoaded', attach, { once: true });
    if (this.st.o) this.toggle(true, false);
    else if (this.st.c || this.st.m.some(unacked)) void this.connect();
    this.schedule();
  }

  private toggle(open: boolean, focus: boolean): void {
    this.open = open;
    this.st.o = open;
    if (open) this.st.u = 0;
    this.save();
    this.v?.setUnread(this.st.u);
    this.v?.setOpen(open, focus);
    if (open && !this.started) void this.connect();
  }

  private save(): void {
    const m = this.st.m;
    let extra = m.length - KEEP;
    if (extra > 0) this.st.m = m.filter((x) => unacked(x) || extra-- <= 0);
    save(this.key, this.st);
  }

  private changed(): void {
    this.st.m.sort(order);
    this.save();
    this.v?.render(this.st.m);
    this.schedule();
  }

  private find(cid?: string, id?: string): Msg | undefined {
    return this.st.m.find((m) => (cid && m.cid === cid) || (id && m.id === id));
  }

  // ---- sending ----

  private send(text: string): void {
    const cid = crypto.randomUUID();
    const now = Date.now();
    const m: Msg = { k: cid, cid, text, a: 'contact', at: now, st: 'pending', n: 0, d: now + ACK_TIMEOUT, r: 0 };
    this.st.m.push(m);
    if (this.ready) this.transmit(m);
    else void this.connect();
    this.changed();
  }

  private retry(k: string): void {
    const m = this.st.m.find((x) => x.k === k);
    if (!m || !unacked(m)) return;
    const now = Date.now();
    Object.assign(m, { st: 'pending', d: now + ACK_TIMEOUT, n: 0, r: 0, x: false });
    if (this.ready) this.transmit(m);
    else {
      this.fails = 0;
      void this.connect();
    }
    this.changed();
  }

  /** transmit sends one queued message and schedules its next automatic attempt. */
  private transmit(m: Msg): void {
    if (!m.cid || !this.frame({ type: 'send', client_message_id: m.cid, text: m.text })) return;
    m.n = (m.n || 0) + 1;
    m.r = Date.now() + Math.max(ACK_TIMEOUT, backoff(m.n, 2000, 60000));
  }

  private frame(f: ClientFrame): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(f));
    return true;
  }

  /** schedule runs the queue's clock while anything is unacknowledged. */
  private schedule(): void {
    if (this.tickTimer || !this.st.m.some(unacked)) return;
    this.tickTimer = setTimeout(() => {
      this.tickTimer = 0;
      this.tick();
    }, TICK);
  }

  private tick(): void {
    const now = Date.now();
    let dirty = false;
    for (const m of this.st.m) {
      if (!unacked(m)) continue;
      if (m.st === 'pending' && now >= (m.d || 0)) {
        m.st = 'failed';
        dirty = true;
      }
      if (this.ready && !m.x && now >= (m.r || 0)) {
        this.transmit(m);
        dirty = true;
      }
    }
    if (dirty) this.changed();
    else this.schedule();
    if (!this.ws && !this.connecting && !this.reconnectTimer && !this.dead) void this.connect();
  }

  private typing(): void {
    const now = Date.now();
    if (this.ready && now - this.lastTyping > TYPING_EVERY) {
      this.lastTyping = now;
      this.frame({ type: 'typing' });
    }
  }

  // ---- connection ----

  private status(): void {
    const v = this.v;
    if (!v || !this.started) return;
    if (this.dead) v.setStatus('Chat unavailable', false);
    else if (this.ready) v.setStatus('Online', true);
    else v.setStatus(this.fails ? 'Offline, reconnecting…' : 'Connecting…', false);
  }

  /** session asks for a visitor session (tokens are single-use: one per connection). */
  private async session(): Promise<Session | undefined> {
    for (let i = 0; i < 3; i++) {
      const st = this.st;
      // The query names the widget for the CORS preflight, which has no body.
      const r = await fetch(`${this.o.api}/api/v1/widget/sessions?widget_id=${encodeURIComponent(this.o.id)}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        credentials: 'omit',
        body: JSON.stringify({
          widget_id: this.o.id,
          visitor_id: this.o.userId || st.v,
          conversation_id: st.c,
          user_hash: this.o.userHash,
        }),
      });
      if (r.ok) {
        const s = (await r.json()) as Session;
        if (!s || typeof s.token !== 'string') return undefined;
        if (s.widget) {
          st.cfg = cleanConfig(s.widget);
          this.v?.theme(st.cfg);
        }
        if (st.c && st.c !== s.conversation_id) this.reset();
        st.v = s.visitor_id;
        st.c = s.conversation_id;
        this.save();
        return s;
      }
      if (r.status === 404 && st.c) {
        this.reset(); // the stored conversation is gone: start a new one, keep unsent messages
      } else if (r.status === 400 && st.v && !this.o.userId) {
        st.v = undefined;
        this.reset();
      } else {
        if (r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429) this.dead = true;
        return undefined;
      }
    }
    return undefined;
  }

  /** reset forgets the conversation, keeping the messages that were never delivered. */
  private reset(): void {
    this.st.c = undefined;
    this.st.s = 0;
    this.st.m = this.st.m.filter(unacked);
    this.changed();
  }

  private async connect(): Promise<void> {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = 0;
    if (this.ws || this.connecting || this.dead) return;
    this.started = this.connecting = true;
    this.status();
    let s: Session | undefined;
    try {
      s = await this.session();
    } catch {
      // Network failure: retried with backoff.
    }
    this.connecting = false;
    if (!s) {
      if (this.dead) this.status();
      else this.reconnect();
      return;
    }
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.o.api.replace(/^http/, 'ws') + '/api/v1/widget/ws?token=' + encodeURIComponent(s.token));
    } catch {
      this.reconnect();
      return;
    }
    this.ws = ws;
    let openedAt = 0;
    ws.onopen = () => {
      openedAt = Date.now();
      this.ready = true;
      this.frame({ type: 'resume', after_seq: this.st.s });
      // Everything unacknowledged goes again, failed messages included (same client_message_id).
      for (const m of this.st.m) {
        if (!unacked(m) || m.x) continue;
        if (m.st === 'pending') m.d = Date.now() + ACK_TIMEOUT;
        this.transmit(m);
      }
      this.changed();
      this.status();
    };
    ws.onmessage = (e) => this.receive(e.data);
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.ready = false;
      // A socket that lived a while starts the backoff afresh.
      if (openedAt && Date.now() - openedAt > 5000) this.fails = 0;
      if ((e.code === 4000 || e.code === 4001) && this.fails === 0) {
        // Fell behind (resume from the last seq) or the conversation is gone: a new session now.
        this.fails = 1;
        void this.connect();
      } else this.reconnect();
    };
  }

  private reconnect(): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.connect(), backoff(this.fails++, 1000, 15000));
    this.status();
  }

  private receive(data: unknown): void {
    let f: ServerFrame;
    try {
      f = JSON.parse(String(data));
    } catch {
      return;
    }
    if (!f || typeof f !== 'object') return;
    if (f.type === 'ack') {
      const m = this.find(f.client_message_id);
      if (m && typeof f.seq === 'number') {
        Object.assign(m, { id: f.id, seq: f.seq, st: 'sent', x: false });
        this.changed();
      }
    } else if (f.type === 'message') {
      this.message(f);
    } else if (f.type === 'typing') {
      if (f.author?.type !== 'contact') this.showTyping(true);
    } else if (f.type === 'error') {
      const m = this.find(f.client_message_id);
      if (m && unacked(m)) {
        if (f.code === 'invalid' || f.code === 'conflict') Object.assign(m, { st: 'failed', x: true });
        else m.r = Date.now() + backoff(m.n || 0, 2000, 60000);
        this.changed();
      }
    }
  }

  private message(f: MessageFrame): void {
    if (typeof f.seq !== 'number' || typeof f.text !== 'string' || !f.id) return;
    const st = this.st;
    if (f.seq > st.s) st.s = f.seq;
    let m = this.find(f.client_message_id, f.id) || st.m.find((x) => x.seq === f.seq);
    const a = f.author?.type || 'system';
    if (!m) {
      m = { k: f.client_message_id || f.id, text: f.text, a, at: Date.parse(f.created_at) || Date.now() };
      if (f.client_message_id) m.cid = f.client_message_id;
      if (a === 'contact') m.st = 'sent'; // the visitor's, from another tab
      st.m.push(m);
      if (a !== 'contact') {
        this.showTyping(false);
        if (!this.open) st.u++;
        this.v?.setUnread(st.u);
      }
    }
    // A message of this tab's queue stays pending until its ack: the ack, not the echo, promises
    // that the message is readable through the REST API. Without one it is sent again (same
    // client_message_id) and acknowledged then.
    m.id = f.id;
    m.seq = f.seq;
    this.changed();
  }

  private showTyping(on: boolean): void {
    clearTimeout(this.typingTimer);
    this.v?.typing(on);
    if (on) this.typingTimer = setTimeout(() => this.v?.typing(false), TYPING_SHOWN);
  }
}
