// The widget's stylesheet, attached to its shadow root as a constructable stylesheet so that a host
// page with a strict Content-Security-Policy (no inline style) does not block it. Theme colours are
// custom properties set through the CSSOM: --p primary, --pc text on primary, --bg background,
// --fg text.

export const CSS = `
:host{all:initial!important;display:block!important;position:fixed!important;z-index:2147483000!important;width:0!important;height:0!important;overflow:visible!important;visibility:visible!important}
:where(.w *,.w *::before,.w *::after){box-sizing:border-box;margin:0;padding:0;border:0;font:inherit;color:inherit;background:none;text-align:left;letter-spacing:normal;text-transform:none;text-decoration:none}
.w{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);-webkit-font-smoothing:antialiased;--line:rgba(0,0,0,.1);--line:color-mix(in srgb,var(--fg) 12%,var(--bg));--soft:rgba(0,0,0,.06);--soft:color-mix(in srgb,var(--fg) 7%,var(--bg))}
.w [hidden]{display:none!important}
button{cursor:pointer}
svg{display:block;fill:currentColor}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.l{position:fixed;bottom:20px;right:20px;width:60px;height:60px;border-radius:50%;background:var(--p);color:var(--pc);display:flex;align-items:center;justify-content:center;box-shadow:0 6px 20px rgba(0,0,0,.22);transition:transform .15s}
.l:hover{transform:scale(1.06)}
.l svg{width:28px;height:28px}
.l .i2,.open .l .i1{display:none}
.open .l .i2{display:block}
.b{position:absolute;top:-3px;right:-3px;min-width:22px;height:22px;padding:0 6px;border-radius:11px;background:#dc2626;color:#fff;font-size:12px;font-weight:700;line-height:22px;text-align:center;box-shadow:0 0 0 2px #fff}
.p{position:fixed;bottom:92px;right:20px;width:370px;max-width:calc(100vw - 40px);height:560px;max-height:calc(100vh - 112px);display:none;flex-direction:column;background:var(--bg);border-radius:16px;overflow:hidden;box-shadow:0 12px 48px rgba(0,0,0,.24)}
.left .l,.left .p{right:auto;left:20px}
.open .p{display:flex;animation:mc-in .18s ease-out}
@keyframes mc-in{from{opacity:0;transform:translateY(10px)}}
.hd{background:var(--p);color:var(--pc);padding:14px 12px 14px 20px;display:flex;align-items:center;gap:12px}
.hd div{flex:1;min-width:0}
.hd h2{font-size:16px;font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.hd p{font-size:12px;opacity:.85;display:flex;align-items:center;gap:6px}
.hd p::before{content:"";width:7px;height:7px;border-radius:50%;background:#f59e0b}
.hd p.on::before{background:#22c55e}
.x{width:36px;height:36px;border-radius:8px;display:flex;align-items:center;justify-content:center;flex:none}
.x:hover{background:rgba(127,127,127,.25)}
.x svg{width:20px;height:20px}
.sc{flex:1;overflow-y:auto;padding:16px;display:flex;flex-direction:column;gap:8px;overscroll-behavior:contain}
.ls{list-style:none;display:flex;flex-direction:column;gap:8px}
.m{display:flex;flex-direction:column;align-items:flex-start;max-width:82%}
.m.me{align-self:flex-end;align-items:flex-end}
.t,.g{padding:9px 13px;border-radius:18px 18px 18px 5px;background:var(--soft);white-space:pre-wrap;overflow-wrap:anywhere}
.g{max-width:82%}
.me .t{background:var(--p);color:var(--pc);border-radius:18px 18px 5px 18px}
.m.sys{align-self:center;align-items:center;max-width:90%}
.sys .t{background:none;font-size:12px;opacity:.7;text-align:center;padding:2px}
.failed .t{opacity:.75}
.mt{font-size:11px;opacity:.7;margin-top:3px;padding:0 4px;display:flex;gap:8px;align-items:center}
.failed .mt{color:#dc2626;opacity:1}
.r{color:var(--p);font-weight:700;font-size:11px;padding:2px 8px;border:1px solid currentColor;border-radius:10px}
.ty{display:flex;gap:4px;padding:12px 14px;border-radius:18px 18px 18px 5px;background:var(--soft);align-self:flex-start}
.ty i{width:7px;height:7px;border-radius:50%;background:currentColor;opacity:.4;animation:mc-dot 1.2s infinite}
.ty i:nth-child(2){animation-delay:.2s}
.ty i:nth-child(3){animation-delay:.4s}
@keyframes mc-dot{30%{opacity:1;transform:translateY(-3px)}}
.f{display:flex;align-items:flex-end;gap:8px;padding:12px;border-top:1px solid var(--line)}
textarea{flex:1;resize:none;border:1px solid var(--line);border-radius:20px;padding:9px 14px;height:40px;max-height:120px;background:var(--bg);color:var(--fg);outline:none;overflow-y:auto}
textarea::placeholder{color:var(--fg);opacity:.5}
textarea:focus{border-color:var(--p);box-shadow:0 0 0 1px var(--p)}
textarea:focus-visible{outline:none}
.s{width:40px;height:40px;border-radius:50%;background:var(--p);color:var(--pc);display:flex;align-items:center;justify-content:center;flex:none}
.s svg{width:18px;height:18px}
:focus-visible{outline:2px solid var(--p);outline-offset:2px}
.l:focus-visible{outline-offset:3px}
.hd :focus-visible{outline-color:var(--pc);outline-offset:-3px}
@media (max-width:480px){.p{inset:0;width:auto;height:auto;max-width:none;max-height:none;border-radius:0}.open .l{display:none}}
@media (prefers-reduced-motion:reduce){.w *{animation:none!important;transition:none!important}}
`;
