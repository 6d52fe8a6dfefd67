/**
 * A tiny dependency-free SVG chart writer for training curves and reward/KL frontiers.
 * @module
 */

/** One named series of (x, y) points; points with a non-finite coordinate are skipped (lines break there). */
export interface Series {
  /** Legend name. */
  name: string;
  /** The (x, y) points, in drawing order. */
  points: readonly (readonly [number, number])[];
  /** Optional text drawn next to each point (e.g. "β=0.1"), same order as `points`. */
  labels?: readonly (string | undefined)[];
}

/** Chart contents and look. */
export interface ChartOptions {
  /** Title drawn above the plot. */
  title: string;
  /** X axis label. */
  xLabel: string;
  /** Y axis label. */
  yLabel: string;
  /** The series, each drawn in its own color. */
  series: readonly Series[];
  /** Width in pixels (default 480). */
  width?: number;
  /** Height in pixels (default 320). */
  height?: number;
  /** Draw a dot at each point (default false for lineChart). */
  markers?: boolean;
  /** Connect consecutive points (default true for lineChart). */
  lines?: boolean;
}

/** Colors for successive series (matplotlib's tab10), reused cyclically past ten. */
export const COLORS: readonly string[] =
  "#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #7f7f7f #bcbd22 #17becf".split(" ");

/** Escapes text for use in XML content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => `&${{ "&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos" }[c]};`,
  );
}

/**
 * About `count` + 1 round tick values (steps of 1, 2 or 5 × 10^k) covering [lo, hi]; the first and last
 * ticks bound the axis. A zero-width range is widened so a constant series still gets an axis.
 */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) [lo, hi] = [lo - (Math.abs(lo) * 0.1 || 1), hi + (Math.abs(hi) * 0.1 || 1)];
  const raw = (hi - lo) / count, mag = 10 ** Math.floor(Math.log10(raw)), norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9)); // rounding hides 0.30000000000000004
  const ticks: number[] = [];
  for (let i = Math.floor(lo / step + 1e-9); i <= Math.ceil(hi / step - 1e-9); i++) {
    ticks.push(Number((i * step).toFixed(digits)) || 0); // `|| 0` turns -0 into 0
  }
  return ticks;
}

const r1 = (v: number) => Math.round(v * 10) / 10;
const ok = (p?: readonly [number, number]) => !!p && Number.isFinite(p[0]) && Number.isFinite(p[1]);

/** An SVG line chart with axes, ticks, grid lines, axis labels and a legend. */
export function lineChart(o: ChartOptions): string {
  const W = o.width ?? 480, H = o.height ?? 320, lines = o.lines ?? true;
  const names = o.series.map((s) => s.name.length > 24 ? s.name.slice(0, 23) + "…" : s.name);
  const legendW = names.length ? 30 + 6.5 * Math.max(...names.map((n) => n.length)) : 10;
  const x0 = 60, x1 = W - legendW, y0 = 34, y1 = H - 44;
  const finite = o.series.flatMap((s) => s.points.filter((p) => ok(p)));
  const range = (v: number[]) =>
    // reduce, not Math.min(...v): long series would overflow the stack
    v.length
      ? niceTicks(v.reduce((a, b) => Math.min(a, b)), v.reduce((a, b) => Math.max(a, b)))
      : niceTicks(0, 1);
  const xt = range(finite.map((p) => p[0])), yt = range(finite.map((p) => p[1]));
  const [xlo, xhi, ylo, yhi] = [xt[0], xt.at(-1)!, yt[0], yt.at(-1)!];
  const sx = (x: number) => r1(x0 + (x - xlo) / (xhi - xlo) * (x1 - x0));
  const sy = (y: number) => r1(y1 - (y - ylo) / (yhi - ylo) * (y1 - y0));
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
    `font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${r1(W / 2)}" y="20" text-anchor="middle" font-size="14">${escapeXml(o.title)}</text>`,
  ];
  for (const t of xt) {
    out.push(`<line x1="${sx(t)}" y1="${y0}" x2="${sx(t)}" y2="${y1}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${sx(t)}" y="${y1 + 15}" text-anchor="middle">${t}</text>`);
  }
  for (const t of yt) {
    out.push(`<line x1="${x0}" y1="${sy(t)}" x2="${x1}" y2="${sy(t)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${x0 - 5}" y="${sy(t) + 4}" text-anchor="end">${t}</text>`);
  }
  out.push(
    `<rect x="${x0}" y="${y0}" width="${x1 - x0}" height="${y1 - y0}" fill="none" stroke="#333"/>`,
    `<text x="${r1((x0 + x1) / 2)}" y="${H - 8}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`,
    `<text transform="translate(14 ${r1((y0 + y1) / 2)}) rotate(-90)" text-anchor="middle">` +
      `${escapeXml(o.yLabel)}</text>`,
  );
  if (!finite.length) {
    out.push(`<text x="${r1((x0 + x1) / 2)}" y="${r1((y0 + y1) / 2)}" text-anchor="middle">no data</text>`);
  }
  o.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    let d = "", gap = true;
    s.points.forEach(([x, y], j, ps) => {
      if (!ok(ps[j])) return void (gap = true);
      d += `${gap ? "M" : "L"}${sx(x)} ${sy(y)} `, gap = false;
      const isolated = !ok(ps[j - 1]) && !ok(ps[j + 1]); // a lone point would be an invisible path
      if (o.markers || !lines || isolated) {
        out.push(`<circle cx="${sx(x)}" cy="${sy(y)}" r="3" fill="${color}"/>`);
      }
      const label = s.labels?.[j];
      if (label) {
        out.push(`<text x="${sx(x) + 5}" y="${sy(y) - 5}" font-size="10">${escapeXml(label)}</text>`);
      }
    });
    if (lines && d) out.push(`<path d="${d.trim()}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
    const ly = y0 + 8 + 16 * i;
    out.push(
      `<line x1="${x1 + 8}" y1="${ly}" x2="${x1 + 22}" y2="${ly}" stroke="${color}" stroke-width="3"/>`,
    );
    out.push(`<text x="${x1 + 26}" y="${ly + 4}">${escapeXml(names[i])}</text>`);
  });
  return out.join("\n") + "\n</svg>\n";
}

/** A scatter chart: dots (with optional per-point labels) and no connecting lines. */
export function scatterChart(o: ChartOptions): string {
  return lineChart({ ...o, markers: true, lines: o.lines ?? false });
}

/** Lays out charts (from {@link lineChart}) in a grid of `columns`, as one SVG of nested `<svg>`s. */
export function grid(charts: readonly string[], columns: number): string {
  if (!Number.isInteger(columns) || columns < 1) throw new Error(`grid: columns must be ≥ 1, got ${columns}`);
  const sizes = charts.map((c, i) => {
    const m = c.match(/^\s*<svg\b[^>]*?\swidth="([\d.]+)"[^>]*?\sheight="([\d.]+)"/);
    if (!m) throw new Error(`grid: chart ${i} is not an <svg> with width and height`);
    return [Number(m[1]), Number(m[2])];
  });
  const cw = Math.max(0, ...sizes.map((s) => s[0])), ch = Math.max(0, ...sizes.map((s) => s[1]));
  const W = cw * Math.min(columns, charts.length), H = ch * Math.ceil(charts.length / columns);
  const cells = charts.map((c, i) =>
    c.trim().replace(/^<svg\b/, `<svg x="${(i % columns) * cw}" y="${Math.floor(i / columns) * ch}"`)
  );
  const head = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`;
  return [head, `<rect width="${W}" height="${H}" fill="white"/>`, ...cells, "</svg>\n"].join("\n");
}
