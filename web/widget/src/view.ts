// The widget's DOM: a launcher and a panel inside a shadow root. Text is only ever set with
// textContent; styles come from a constructable stylesheet and colours from CSSOM custom properties,
// so nothing here needs an inline script or style under the host page's CSP.

import { CSS } from './css';
import type { WidgetConfig } from './proto';
import type { Msg } from './store';

const SVG = 'http://www.w3.org/2000/svg';
const ICON_CHAT = 'M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2zM7 9h10v2H7zm0-3h10v2H7zm0 6h7v2H7z';
const ICON_CLOSE = 'M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z';
const ICON_SEND = 'M2 21 23 12 2 3v7l15 2-15 2z';

/** What the view asks of the widget. */
export interface Handlers {
  toggle(open: boolean): void;
  send(text: string): void;
  retry(key: string): void;
  typing(): void;
}

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls?: string,
  attrs?: Record<string, string>,
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text) e.textContent = text;
  return e;
}

function icon(d: string, cls = ''): SVGSVGElement {
  const s = document.createElementNS(SVG, 'svg');
  s.setAttribute('viewBox', '0 0 24 24');
  s.setAttribute('aria-hidden', 'true');
  s.setAttribute('focusable', 'false');
  if (cls) s.setAttribute('class', cls);
  const p = document.createElementNS(SVG, 'path');
  p.setAttribute('d', d);
  s.append(p);
  return s;
}

/** contrast picks dark or light text for a #rrggbb background. */
export function contrast(hex: string): string {
  const n = parseInt(hex.slice(1), 16);
  const y = (0.299 * (n >> 16) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255)) / 255;
  return y > 0.62 ? '#111827' : '#ffffff';
}

const WHO: Record<string, string> = { contact: 'You', bot: 'Assistant', system: 'Notice' };

function clock(t: number): string {
  try {
    return new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  } catch {
    return '';
  }
}

/** View owns the widget's elements. */
export class View {
  readonly host: HTMLElement;
  private readonly box: HTMLDivElement;
  private readonly launcher: HTMLButtonElement;
  private readonly badge: HTMLSpanElement;
  private readonly title: HTMLHeadingElement;
  private readonly sub: HTMLParagraphElement;
  private readonly greet: HTMLParagraphElement;
  private readonly sc: HTMLDivElement;
  private readonly list: HTMLOListElement;
  private readonly ty: HTMLDivElement;
  private readonly input: HTMLTextAreaElement;
  private readonly nodes = new Map<string, HTMLLIElement>();
  private opened = false;
  private unread = 0;

  constructor(private readonly on: Handlers, widgetId: string) {
    this.host = document.createElement('metachat-widget');
    this.host.dataset.widgetId = widgetId;
    const root = this.host.attachShadow({ mode: 'open' });
    if ('adoptedStyleSheets' in root && typeof CSSStyleSheet === 'function' && 'replaceSync' in CSSStyleSheet.prototype) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } else {
      root.append(h('style', '', {}, CSS)); // older browsers; blocked only under a strict CSP
    }
    const box = (this.box = h('div', 'w'));
    const panelId = 'mc-panel';

    const launcher = (this.launcher = h('button', 'l', { type: 'button', 'aria-controls': panelId, 'aria-expanded': 'false' }));
    this.badge = h('span', 'b', { 'aria-hidden': 'true', hidden: '' });
    launcher.append(icon(ICON_CHAT, 'i1'), icon(ICON_CLOSE, 'i2'), this.badge);
    launcher.addEventListener('click', () => on.toggle(!this.opened));

    const panel = h('div', 'p', { id: panelId, role: 'dialog', 'aria-labelledby': 'mc-title' });
    const hd = h('div', 'hd');
    const hdText = h('div');
    this.title = h('h2', '', { id: 'mc-title' });
    this.sub = h('p', '', { hidden: '' });
    hdText.append(this.title, this.sub);
    const close = h('button', 'x', { type: 'button', 'aria-label': 'Close chat' });
    close.append(icon(ICON_CLOSE));
    close.addEventListener('click', () => on.toggle(false));
    hd.append(hdText, close);

    this.sc = h('div', 'sc');
    this.greet = h('p', 'g');
    this.list = h('ol', 'ls', { role: 'log', 'aria-live': 'polite', 'aria-label': 'Messages' });
    this.ty = h('div', 'ty', { hidden: '', role: 'status', 'aria-label': 'Typing' });
    this.ty.append(h('i'), h('i'), h('i'));
    this.sc.append(this.greet, this.list, this.ty);

    const form = h('form', 'f');
    const input = (this.input = h('textarea', '', { rows: '1', maxlength: '4000', 'aria-label': 'Message', placeholder: 'Write a message…' }));
    const send = h('button', 's', { type: 'submit', 'aria-label': 'Send message' });
    send.append(icon(ICON_SEND));
    form.append(input, send);
    const submit = () => {
      const text = input.value.trim();
      if (!text) return;
      input.value = '';
      this.grow();
      on.send(text);
    };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      submit();
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        submit();
      }
    });
    input.addEventListener('input', () => {
      this.grow();
      if (input.value) on.typing();
    });
    box.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.opened) {
        e.stopPropagation();
        on.toggle(false);
      }
    });

    panel.append(hd, this.sc, form);
    box.append(panel, launcher);
    root.append(box);
    this.setUnread(0);
  }

  private grow(): void {
    const s = this.input.style;
    s.setProperty('height', 'auto');
    s.setProperty('height', Math.min(this.input.scrollHeight + 2, 120) + 'px');
  }

  /** theme applies a configuration: colours, name, greeting and side. */
  theme(c: WidgetConfig): void {
    const s = this.box.style;
    s.setProperty('--p', c.colors.primary);
    s.setProperty('--pc', contrast(c.colors.primary));
    s.setProperty('--bg', c.colors.background);
    s.setProperty('--fg', c.colors.text);
    this.box.classList.toggle('left', c.position === 'bottom-left');
    this.title.textContent = c.name;
    this.greet.textContent = c.greeting;
    this.greet.hidden = !c.greeting;
  }

  /** setOpen shows or hides the panel; focus follows unless restoring after a reload. */
  setOpen(open: boolean, focus: boolean): void {
    this.opened = open;
    this.box.classList.toggle('open', open);
    this.launcher.setAttribute('aria-expanded', String(open));
    this.setUnread(this.unread);
    if (open) {
      this.bottom();
      if (focus) this.input.focus();
    } else if (focus) {
      this.launcher.focus();
    }
  }

  /** setUnread shows the unread count on the launcher. */
  setUnread(n: number): void {
    this.unread = n;
    this.badge.textContent = n > 99 ? '99+' : String(n);
    this.badge.hidden = n === 0 || this.opened;
    this.launcher.setAttribute(
      'aria-label',
      this.opened ? 'Close chat' : 'Open chat' + (n ? `, ${n} unread message${n === 1 ? '' : 's'}` : ''),
    );
  }

  /** setStatus shows the connection state under the title ('' hides it). */
  setStatus(text: string, online: boolean): void {
    this.sub.textContent = text;
    this.sub.hidden = !text;
    this.sub.classList.toggle('on', online);
  }

  /** typing shows or hides the others-are-typing dots. */
  typing(on: boolean): void {
    const near = this.near();
    this.ty.hidden = !on;
    if (near) this.bottom();
  }

  private near(): boolean {
    const s = this.sc;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  private bottom(): void {
    this.sc.scrollTop = this.sc.scrollHeight;
  }

  /** render brings the list in line with msgs (already in display order), touching only what changed. */
  render(msgs: Msg[]): void {
    const near = this.near();
    let mine = false;
    const keep = new Set<string>();
    msgs.forEach((m, i) => {
      keep.add(m.k);
      let li = this.nodes.get(m.k);
      if (!li) {
        li = this.item(m);
        this.nodes.set(m.k, li);
        mine ||= m.a === 'contact';
      }
      this.update(li, m);
      const at = this.list.children[i];
      if (at !== li) this.list.insertBefore(li, at || null);
    });
    for (const [k, li] of this.nodes) {
      if (!keep.has(k)) {
        li.remove();
        this.nodes.delete(k);
      }
    }
    if (near || mine) this.bottom();
  }

  private item(m: Msg): HTMLLIElement {
    const who = m.a === 'contact' ? 'me' : m.a === 'system' ? 'sys' : 'o';
    const li = h('li', 'm ' + who);
    li.dataset.key = m.k;
    if (m.cid) li.dataset.cid = m.cid;
    li.append(h('span', 'sr', {}, (WHO[m.a] || 'Agent') + ': '), h('div', 't', {}, m.text), h('div', 'mt'));
    return li;
  }

  private update(li: HTMLLIElement, m: Msg): void {
    const st = m.st || '';
    const seq = m.seq ? String(m.seq) : '';
    if (li.dataset.seq !== seq) li.dataset.seq = seq;
    if (li.dataset.status === st && li.lastElementChild?.childNodes.length) return;
    li.dataset.status = st;
    li.classList.remove('pending', 'sent', 'failed');
    if (st) li.classList.add(st);
    const meta = li.lastElementChild as HTMLElement;
    const label = st === 'pending' ? 'Sending…' : st === 'failed' ? 'Not delivered' : st === 'sent' ? 'Sent' : '';
    meta.replaceChildren(h('span', 'st', {}, [clock(m.at), label].filter(Boolean).join(' · ')));
    if (st === 'failed') {
      const b = h('button', 'r', { type: 'button', 'aria-label': 'Retry sending this message' }, 'Retry');
      b.addEventListener('click', () => {
        this.on.retry(m.k);
        this.input.focus();
      });
      meta.append(b);
    }
  }
}
