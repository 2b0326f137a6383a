// Bar charts drawn as SVG in the page (no library): one bar per hour of the day.
const NS = "http://www.w3.org/2000/svg";

function node(tag, attrs, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  return n;
}

/// Draws `points` ([{label, value, low}]) as bars into `svg` (viewBox 480×160);
/// `max` is the top of the scale, `fmt` writes a value.
export function bars(svg, points, max, fmt) {
  svg.replaceChildren();
  const W = 480, H = 160, left = 30, bottom = 18, top = 8;
  const h = H - bottom - top;
  svg.append(node("line", { x1: left, y1: top + h, x2: W, y2: top + h }));
  svg.append(node("text", { x: 2, y: top + 8 }, fmt(max)));
  svg.append(node("text", { x: 2, y: top + h }, fmt(0)));
  const n = Math.max(points.length, 1), w = (W - left) / n;
  points.forEach((p, i) => {
    const bh = max > 0 ? Math.round((p.value / max) * h) : 0;
    const x = left + i * w + 2;
    const r = node("rect", { class: p.low ? "bar low" : "bar", x, y: top + h - bh, width: Math.max(w - 4, 1), height: bh });
    r.append(node("title", {}, `${p.label}: ${fmt(p.value)}`));
    svg.append(r);
    if (i % Math.ceil(n / 8) === 0) svg.append(node("text", { x, y: H - 4 }, p.label));
  });
}
