// A captioning run's gallery: GET /api/gallery (the images' names and their captions at the
// latest evaluation) and GET /api/gallery/N.png (image N, PNG bytes encoded once by the run).
// The page loads the images once and takes new captions from the 'gallery' event (stream.ts),
// so an evaluation sends a few kilobytes of text, never the images again. Registered only
// for a captioning run: a language-model run answers 404 here.

import type { FastifyPluginAsync } from 'fastify';
import type { GalleryView } from './view.js';

export const galleryRoutes: FastifyPluginAsync<{ gallery: GalleryView }> = async (app, { gallery }) => {
  app.get('/api/gallery', async () => ({
    images: gallery.images().map((image, index) => ({ index, name: image.name, url: `/api/gallery/${index}.png` })),
    latest: gallery.gallery(),
  }));

  app.get<{ Params: { file: string } }>('/api/gallery/:file', async (request, reply) => {
    const images = gallery.images();
    const index = /^(0|[1-9]\d{0,5})\.png$/.exec(request.params.file)?.[1];
    const image = index === undefined ? undefined : images[Number(index)];
    if (image === undefined) {
      const range = images.length === 0 ? 'the gallery has no image' : `images are 0.png to ${images.length - 1}.png`;
      return reply.code(404).send({ error: 'not_found', message: `no gallery image ${JSON.stringify(request.params.file)}: ${range}` });
    }
    // Fixed for a run, but another run may serve later on the same port: no caching without asking.
    return reply.type('image/png').header('cache-control', 'no-cache').send(Buffer.from(image.png.buffer, image.png.byteOffset, image.png.byteLength));
  });
};
