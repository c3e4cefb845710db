// The wire types of docs/widget-protocol.md: the public configuration, the visitor session and the
// socket frames.

/** Theme colours of a widget, each `#rrggbb`. */
export interface Colors {
  primary: string;
  background: string;
  text: string;
}

/** GET /api/v1/widget/config. */
export interface WidgetConfig {
  name: string;
  colors: Colors;
  greeting: string;
  position: string;
  identity_verification?: boolean;
}

/** POST /api/v1/widget/sessions → 201. */
export interface Session {
  token: string;
  visitor_id: string;
  conversation_id: string;
  expires_at: string;
  widget?: WidgetConfig;
}

/** Who wrote a message: contact (the visitor), user, api_key, bot or system. */
export interface Author {
  type: string;
  id?: string;
}

/** A message frame, also the shape of a stored message on the REST API. */
export interface MessageFrame {
  type: 'message';
  id: string;
  seq: number;
  text: string;
  author: Author;
  created_at: string;
  client_message_id?: string;
}

/** Server → client frames. */
export type ServerFrame =
  | { type: 'ack'; client_message_id: string; id: string; seq: number }
  | MessageFrame
  | { type: 'typing'; author?: Author }
  | { type: 'error'; code: string; message?: string; client_message_id?: string };

/** Client → server frames. */
export type ClientFrame =
  | { type: 'resume'; after_seq: number }
  | { type: 'send'; client_message_id: string; text: string }
  | { type: 'typing' };

export const DEFAULT_CONFIG: WidgetConfig = {
  name: 'Chat',
  colors: { primary: '#2563eb', background: '#ffffff', text: '#111827' },
  greeting: '',
  position: 'bottom-right',
};

const HEX = /^#[0-9a-f]{6}$/i;

/** cleanConfig keeps only well-formed values of an answer (or a stored copy), defaults elsewhere. */
export function cleanConfig(raw: unknown): WidgetConfig {
  const r = (raw && typeof raw === 'object' ? raw : {}) as Partial<WidgetConfig>;
  const d = DEFAULT_CONFIG;
  const c = (r.colors && typeof r.colors === 'object' ? r.colors : {}) as Partial<Colors>;
  const col = (v: unknown, def: string) => (typeof v === 'string' && HEX.test(v) ? v : def);
  return {
    name: typeof r.name === 'string' && r.name ? r.name : d.name,
    colors: {
      primary: col(c.primary, d.colors.primary),
      background: col(c.background, d.colors.background),
      text: col(c.text, d.colors.text),
    },
    greeting: typeof r.greeting === 'string' ? r.greeting : '',
    position: r.position === 'bottom-left' ? 'bottom-left' : 'bottom-right',
    identity_verification: r.identity_verification === true,
  };
}
