// A captioning run's dashboard parts, with fastify inject (and one real listen for the event
// stream): the gallery's images are the validation split's first ones as PNG, the same pixels;
// /api/gallery and /api/gallery/N.png serve them and the latest captions; the 'gallery' and
// 'validation' events carry the captions and BLEU-4/accuracy; gradpool_caption_bleu4 and
// gradpool_caption_accuracy are set at each validation, and the run's history file keeps both
// figures. A language-model run has none of these.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { shapesDataset } from '../../coordinator/caption/dataset.js';
import { GALLERY_IMAGES, galleryImages } from '../../coordinator/caption/task.js';
import { HISTORY_FILE, RunRecorder } from '../../coordinator/registry/recorder.js';
import { RunState } from '../../coordinator/runstate.js';
import { Metrics } from '../../dashboard/metrics.js';
import { buildServer, startServer } from '../../dashboard/server.js';
import type { GalleryCaption } from '../../dashboard/view.js';
import { CAPTION_METRICS } from '../helpers/metric-names.js';

const TOKEN = 'a'.repeat(64);
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function runState(runId: string, config: Record<string, unknown>): RunState {
  return new RunState({ runId, status: 'running', step: 0, steps: 100, workers: 1, shards: 1, outDir: '/tmp/run', config, parameters: 10, backend: 'cpu' });
}
const controlOf = (state: RunState) => ({
  runInfo: () => state.info() as unknown as Record<string, unknown>,
  scale: async (workers: number) => ({ workers }),
  checkpoint: async () => ({ path: '/tmp/x', step: 1 }),
  stop: () => {},
});

// shapes, 200 images: a validation split of 20, so the gallery takes its first 12.
const val = await shapesDataset(200, 1).split('val');
const images = await galleryImages(val, 64);

const caption = runState('cap1', { task: 'caption', dataset: 'shapes', clip: 1 });
caption.setGalleryImages(images);
const captionMetrics = new Metrics(caption);
const captionApp = buildServer({ token: TOKEN, control: controlOf(caption), dashboard: { view: caption, metrics: captionMetrics, gallery: caption } });

const lm = runState('lm1', { cell: 'lstm', clip: 1 });
const lmMetrics = new Metrics(lm);
const lmApp = buildServer({ token: TOKEN, control: controlOf(lm), dashboard: { view: lm, metrics: lmMetrics } });

afterAll(async () => {
  await captionApp.close();
  await lmApp.close();
  captionMetrics.close();
  lmMetrics.close();
});

/** Captions for the gallery's images, as an evaluation would give them. */
function captionsAt(step: number): GalleryCaption[] {
  return images.map((image, i) => ({ image: image.name, caption: `step ${step} caption ${i}`, references: val.references(i), correct: i % 2 === 0 }));
}

describe('the gallery images', () => {
  it('are the validation split’s first 12, as PNG files of the same 64×64 RGB pixels', async () => {
    expect(GALLERY_IMAGES).toBe(12);
    expect(images.map((i) => i.name)).toEqual(Array.from({ length: 12 }, (_, i) => val.imageName(i)));
    for (const [i, image] of images.entries()) {
      expect(Buffer.from(image.png.subarray(0, 8)).equals(PNG_SIGNATURE)).toBe(true);
      const { data, info } = await sharp(image.png).raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height, info.channels]).toEqual([64, 64, 3]);
      expect(Buffer.from(val.image(i)).equals(data), `image ${i}'s pixels`).toBe(true);
    }
  });

  it('are fewer when the split is smaller', async () => {
    const small = await shapesDataset(50, 1).split('val'); // 5 validation images
    expect((await galleryImages(small, 64)).map((i) => i.name)).toEqual(Array.from({ length: 5 }, (_, i) => small.imageName(i)));
  });
});

describe('GET /api/gallery and /api/gallery/N.png', () => {
  it('lists the images before the first evaluation, then the latest captions', async () => {
    const before = (await captionApp.inject('/api/gallery')).json();
    expect(before.latest).toBeNull();
    expect(before.images).toEqual(images.map((image, index) => ({ index, name: image.name, url: `/api/gallery/${index}.png` })));
    caption.recordGallery(10, captionsAt(10));
    caption.recordGallery(20, captionsAt(20));
    const after = (await captionApp.inject('/api/gallery')).json();
    expect(after.latest).toMatchObject({ step: 20, time: expect.any(Number) });
    expect(after.latest.captions).toEqual(captionsAt(20).map((c) => ({ ...c, references: [...c.references] })));
  });

  it('serves each image as image/png, and 404 names the range for anything else', async () => {
    for (const index of [0, 11]) {
      const r = await captionApp.inject(`/api/gallery/${index}.png`);
      expect(r.statusCode).toBe(200);
      expect(r.headers['content-type']).toBe('image/png');
      expect(r.rawPayload.equals(Buffer.from(images[index].png))).toBe(true);
    }
    for (const file of ['12.png', '-1.png', '01.png', '1.jpg', 'x.png', '1e1.png']) {
      const r = await captionApp.inject(`/api/gallery/${file}`);
      expect(r.statusCode, file).toBe(404);
      expect(r.json()).toEqual({ error: 'not_found', message: `no gallery image "${file}": images are 0.png to 11.png` });
    }
  });

  it('refuses captions that do not match the images one to one', () => {
    expect(() => caption.recordGallery(30, captionsAt(30).slice(1))).toThrow('recordGallery: 11 captions for 12 gallery images');
    expect(caption.gallery()!.step).toBe(20);
  });

  it('is not there for a language-model run', async () => {
    for (const url of ['/api/gallery', '/api/gallery/0.png']) {
      const r = await lmApp.inject(url);
      expect(r.statusCode, url).toBe(404);
    }
  });
});

describe('caption metrics', () => {
  it('gradpool_caption_bleu4 and gradpool_caption_accuracy{split="val"} follow each validation', async () => {
    const text = () => captionMetrics.text(); // the registry itself: the route reuses its text for a second
    // Declared from the start, without a value before the first validation.
    expect(await text()).toMatch(/^# TYPE gradpool_caption_bleu4 gauge$/m);
    expect(await text()).not.toMatch(/^gradpool_caption_/m);
    caption.recordValidation(10, 1.5, 1.5 / Math.LN2, { bleu4: 0.25, accuracy: 0.125 });
    expect(await text()).toMatch(/^gradpool_caption_bleu4\{split="val",run="cap1"\} 0\.25$/m);
    caption.recordValidation(20, 1.2, 1.2 / Math.LN2, { bleu4: 0.625, accuracy: 0.5 });
    const body = await text();
    expect(body).toMatch(/^gradpool_caption_bleu4\{split="val",run="cap1"\} 0\.625$/m);
    expect(body).toMatch(/^gradpool_caption_accuracy\{split="val",run="cap1"\} 0\.5$/m);
    expect(body).toMatch(/^gradpool_loss\{split="val",run="cap1"\} 1\.2$/m);
    for (const spec of CAPTION_METRICS) expect(body, spec.name).toMatch(new RegExp(`^# TYPE ${spec.name} ${spec.type}$`, 'm'));
    // The validations keep both figures for the page's curve.
    const history = (await captionApp.inject('/api/history')).json();
    expect(history.validations.map((v: { bleu4: number; accuracy: number }) => [v.bleu4, v.accuracy])).toEqual([[0.25, 0.125], [0.625, 0.5]]);
  });

  it('a directory dataset (no accuracy) sets BLEU-4 only', async () => {
    const dirRun = runState('cap2', { task: 'caption', dataset: '/data/flickr8k' });
    const metrics = new Metrics(dirRun);
    try {
      dirRun.recordValidation(5, 2, 2 / Math.LN2, { bleu4: 0.1, accuracy: null });
      const body = await metrics.text();
      expect(body).toMatch(/^gradpool_caption_bleu4\{split="val",run="cap2"\} 0\.1$/m);
      expect(body).not.toMatch(/^gradpool_caption_accuracy\{/m);
    } finally {
      metrics.close();
    }
  });

  it('a language-model run has neither series, and its validations no caption figures', async () => {
    lm.recordValidation(10, 2, 2 / Math.LN2);
    const body = (await lmApp.inject('/metrics')).body;
    expect(body).toMatch(/^gradpool_loss\{split="val",run="lm1"\} 2$/m);
    expect(body).not.toContain('gradpool_caption_');
    expect(Object.keys((await lmApp.inject('/api/history')).json().validations[0]).sort()).toEqual(['bitsPerToken', 'loss', 'step', 'time']);
  });
});

describe('/api/events of a captioning run', () => {
  it('streams the gallery captions and the validation with BLEU-4 and accuracy', async () => {
    const server = await startServer({ host: '127.0.0.1', port: 0, token: TOKEN, control: controlOf(caption), dashboard: { view: caption, gallery: caption } });
    try {
      const res = await fetch(`${server.url}/api/events`);
      const reader = res.body!.getReader();
      let text = '';
      const until = async (pattern: RegExp) => {
        while (!pattern.test(text)) text += new TextDecoder().decode((await reader.read()).value);
      };
      await until(/event: run\n/);
      caption.recordValidation(40, 1.1, 1.1 / Math.LN2, { bleu4: 0.75, accuracy: 0.625 });
      caption.recordGallery(40, captionsAt(40));
      await until(/event: gallery\n.*\n\n/);
      expect(text).toMatch(/event: validation\ndata: \{"step":40,"time":\d+,"loss":1\.1,"bitsPerToken":[\d.]+,"bleu4":0\.75,"accuracy":0\.625\}\n/);
      const frame = /event: gallery\ndata: (.*)\n/.exec(text)![1];
      const data = JSON.parse(frame);
      expect(data.step).toBe(40);
      expect(data.captions[3]).toEqual({ image: images[3].name, caption: 'step 40 caption 3', references: [...val.references(3)], correct: false });
      // Captions only: the images are fetched once, never sent in the stream.
      expect(frame.length).toBeLessThan(4000);
      await reader.cancel();
    } finally {
      await server.close();
    }
  });
});

describe("a captioning run's history file", () => {
  it('keeps BLEU-4 and accuracy with each validation, and no gallery lines', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gradpool-caption-history-'));
    try {
      const run = runState('cap3', { task: 'caption', dataset: 'shapes' });
      run.setGalleryImages(images);
      const recorder = new RunRecorder({ id: 'cap3', name: null, kind: 'train', dir, config: {}, backend: 'cpu' }, null, () => {});
      const unsubscribe = run.subscribe((e) => recorder.record(e));
      run.recordValidation(8, 1.25, 1.25 / Math.LN2, { bleu4: 0.375, accuracy: 0.25 });
      run.recordGallery(8, captionsAt(8));
      unsubscribe();
      recorder.close('finished');
      const lines = readFileSync(join(dir, HISTORY_FILE), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      expect(lines.map((l) => l.type)).toEqual(['run', 'validation', 'end']);
      expect(lines[1].data).toMatchObject({ step: 8, loss: 1.25, bleu4: 0.375, accuracy: 0.25 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
