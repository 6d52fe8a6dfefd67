import assert from "node:assert/strict";
import { escapeXml, grid, lineChart, niceTicks, scatterChart } from "../train/svg.ts";

/** Checks tags are balanced and properly nested; returns the count of each element name. */
function wellFormed(svg: string): Record<string, number> {
  const stack: string[] = [], counts: Record<string, number> = {};
  for (const [tag, close, name, self] of svg.matchAll(/<(\/?)([a-zA-Z]+)\b[^>]*?(\/?)>/g)) {
    if (close) assert.equal(stack.pop(), name, `unbalanced ${tag}`);
    else {
      counts[name] = (counts[name] ?? 0) + 1;
      if (!self) stack.push(name);
    }
  }
  assert.deepEqual(stack, []);
  assert.doesNotMatch(svg, /NaN|Infinity|undefined/);
  assert.doesNotMatch(svg.replace(/<[^>]*>/g, ""), /[<>]|&(?!(amp|lt|gt|quot|apos);)/); // text is escaped
  return counts;
}

const texts = (svg: string) => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);

Deno.test("niceTicks gives round steps covering the range", () => {
  assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(0.05, 0.93), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(0, 100), [0, 20, 40, 60, 80, 100]);
  assert.deepEqual(niceTicks(-0.3, 0.25), [-0.3, -0.2, -0.1, 0, 0.1, 0.2, 0.3]);
  assert.deepEqual(niceTicks(1, 1000), [0, 200, 400, 600, 800, 1000]);
  assert.deepEqual(niceTicks(0, 3), [0, 0.5, 1, 1.5, 2, 2.5, 3]);
  assert.deepEqual(niceTicks(2, 2), [1.8, 1.9, 2, 2.1, 2.2]); // constant: widened by 10% each way
  assert.deepEqual(niceTicks(0, 0), [-1, -0.5, 0, 0.5, 1]);
  assert.deepEqual(niceTicks(1e-4, 5e-4), [0.0001, 0.0002, 0.0003, 0.0004, 0.0005]);
});

Deno.test("lineChart: title, labels, legend, ticks, one path per series", () => {
  const svg = lineChart({
    title: "DPO loss <train & val>",
    xLabel: "step",
    yLabel: "loss",
    series: [
      { name: "train", points: [[0, 0.69], [50, 0.5], [100, 0.3]] },
      { name: 'val "held"', points: [[0, 0.7], [100, 0.4]] },
    ],
  });
  const counts = wellFormed(svg);
  assert.equal(counts.svg, 1);
  assert.equal(counts.path, 2);
  assert.ok(svg.includes("DPO loss &lt;train &amp; val&gt;"));
  const t = texts(svg);
  for (const s of ["step", "loss", "train", "val &quot;held&quot;", "0", "20", "100", "0.3", "0.5", "0.7"]) {
    assert.ok(t.includes(s), `missing text ${s}`);
  }
  assert.ok(svg.includes('stroke="#1f77b4"') && svg.includes('stroke="#ff7f0e"'));
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" width="480" height="320"'));
});

Deno.test("lineChart: NaN points break the line; degenerate series are safe", () => {
  const svg = lineChart({
    title: "t",
    xLabel: "x",
    yLabel: "y",
    width: 300,
    height: 200,
    series: [
      { name: "gappy", points: [[0, 1], [1, NaN], [2, 3], [3, 4], [Infinity, 1]] },
      { name: "const", points: [[0, 2], [3, 2]] },
      { name: "single", points: [[1, 2]] },
      { name: "empty", points: [] },
    ],
  });
  assert.equal(wellFormed(svg).circle, 2); // isolated points (gappy's first, single) get a dot
  const paths = [...svg.matchAll(/<path d="([^"]*)"/g)].map((m) => m[1]);
  assert.equal(paths.length, 3); // the empty series draws none
  assert.equal(paths[0].match(/M/g)!.length, 2); // a new segment starts after the NaN
  for (const name of ["gappy", "const", "single", "empty"]) assert.ok(texts(svg).includes(name));
  assert.ok(svg.includes('width="300" height="200"'));
});

Deno.test("lineChart: no data at all", () => {
  const svg = lineChart({
    title: "nothing",
    xLabel: "x",
    yLabel: "y",
    series: [{ name: "a", points: [[NaN, 1]] }],
  });
  wellFormed(svg);
  assert.ok(texts(svg).includes("no data"));
  assert.ok(texts(svg).includes("0.2")); // default 0..1 axes
  wellFormed(lineChart({ title: "", xLabel: "", yLabel: "", series: [] }));
});

Deno.test("scatterChart: dots and per-point labels, no lines", () => {
  const svg = scatterChart({
    title: "reward vs KL",
    xLabel: "KL",
    yLabel: "reward",
    series: [{
      name: "DPO",
      points: [[0.5, 0.2], [2, 0.6], [NaN, 1]],
      labels: ["β=0.5", "β<0.1>", "skipped"],
    }],
  });
  const counts = wellFormed(svg);
  assert.equal(counts.circle, 2);
  assert.equal(counts.path, undefined);
  assert.ok(texts(svg).includes("β=0.5") && texts(svg).includes("β&lt;0.1&gt;"));
  assert.ok(!svg.includes("skipped"));
  assert.equal(
    wellFormed(lineChart({ title: "", xLabel: "", yLabel: "", markers: true, series: [] })).circle,
    undefined,
  );
});

Deno.test("grid nests charts at their cell offsets", () => {
  const a = lineChart({ title: "A", xLabel: "x", yLabel: "y", series: [{ name: "s", points: [[0, 1]] }] });
  const b = lineChart({ title: "B", xLabel: "x", yLabel: "y", series: [], width: 200, height: 100 });
  const svg = grid([a, b, a], 2);
  const counts = wellFormed(svg);
  assert.equal(counts.svg, 4);
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" width="960" height="640"'));
  const pos = [...svg.matchAll(/<svg x="(\d+)" y="(\d+)"/g)].map((m) => [Number(m[1]), Number(m[2])]);
  assert.deepEqual(pos, [[0, 0], [480, 0], [0, 320]]);
  assert.throws(() => grid([a], 0), /columns must be ≥ 1/);
  assert.throws(() => grid(["<g/>"], 1), /chart 0 is not an <svg>/);
  wellFormed(grid([], 3));
});

Deno.test("lineChart: long series", () => {
  const points = Array.from({ length: 300_000 }, (_, i) => [i, Math.sin(i)] as [number, number]);
  const svg = lineChart({ title: "long", xLabel: "x", yLabel: "y", series: [{ name: "s", points }] });
  assert.ok(texts(svg).includes("300000") && texts(svg).includes("-1"));
});

Deno.test("escapeXml", () => {
  assert.equal(escapeXml(`a<b>&"c'`), "a&lt;b&gt;&amp;&quot;c&apos;");
});
