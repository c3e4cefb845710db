// Entry point: <script src="https://HOST/widget.js" data-widget-id="…" async></script>. The widget
// talks to the origin the script was loaded from.

import { Widget } from './widget';

function boot(): void {
  const s =
    (document.currentScript as HTMLScriptElement | null) ||
    document.querySelector<HTMLScriptElement>('script[data-widget-id][src*="widget.js"]');
  const id = s?.dataset.widgetId;
  if (!s || !s.src || !id) {
    console.warn('Metachat: the widget script needs a data-widget-id attribute.');
    return;
  }
  if (document.querySelector(`metachat-widget[data-widget-id="${CSS.escape(id)}"]`)) return; // loaded twice
  new Widget({
    api: new URL(s.src, location.href).origin,
    id,
    userId: s.dataset.userId,
    userHash: s.dataset.userHash,
  }).start();
}

boot();
