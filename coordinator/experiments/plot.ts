// Figures for the experiment reports: Vega-Lite specs rendered to SVG in Node
// (vega's headless renderer: no canvas, no browser).

import * as vega from 'vega';
import * as vl from 'vega-lite';

export type Row = Record<string, string | number | null>;

export async function lineChartSvg(opts: {
  title: string;
  rows: Row[];
  x: string;
  y: string;
  color: string;
  xTitle?: string;
  yTitle?: string;
  xScale?: 'linear' | 'log';
  yScale?: 'linear' | 'log';
  yDomain?: [number, number];
  points?: boolean;
  dash?: string;
}): Promise<string> {
  const spec: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: opts.title,
    width: 520,
    height: 300,
    background: 'white',
    data: { values: opts.rows },
    mark: { type: 'line', point: opts.points ?? false, strokeWidth: 2 },
    encoding: {
      x: { field: opts.x, type: 'quantitative', title: opts.xTitle ?? opts.x, scale: { type: opts.xScale ?? 'linear', zero: false } },
      y: {
        field: opts.y,
        type: 'quantitative',
        title: opts.yTitle ?? opts.y,
        scale: { type: opts.yScale ?? 'linear', ...(opts.yDomain ? { domain: opts.yDomain } : {}) },
      },
      color: { field: opts.color, type: 'nominal', title: opts.color },
      ...(opts.dash ? { strokeDash: { field: opts.dash, type: 'nominal' } } : {}),
    },
  };
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
