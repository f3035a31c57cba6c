// The captioning experiment's sizes (full and --quick) and the shape of its learning curve,
// shared by the run (captioning.ts) and its report (captioning-report.ts).

export interface CaptioningPlan {
  /** Colour–shape pairs kept out of training (`--holdout`). */
  holdout: string;
  shapesCount: number;
  cnn: string;
  hidden: number;
  embed: number;
  batch: number;
  steps: number;
  evalEvery: number;
  /** Validation images per point of the learning curves. */
  valImages: number;
  /** Test (and compositional) images evaluated greedily; null: the whole split. */
  testImages: number | null;
  /** The first this many of them are also decoded with the beam. */
  beamImages: number;
  beam: number;
  /** Test images in the gallery picture, then compositional ones. */
  gallery: { test: number; compositional: number };
}

/**
 * The full experiment is the default captioner (docs/CAPTIONING.md) with two pairs held out;
 * the quick one a smaller CNN and decoder, fewer images and steps (under 3 minutes on 2 cores).
 */
export function captioningPlan(quick: boolean, steps?: number): CaptioningPlan {
  const plan: CaptioningPlan = quick
    ? {
        holdout: 'red:square,blue:circle', shapesCount: 10_000, cnn: '8,16,32', hidden: 128, embed: 64, batch: 32, steps: 1500, evalEvery: 250,
        valImages: 256, testImages: 500, beamImages: 200, beam: 3, gallery: { test: 8, compositional: 4 },
      }
    : {
        holdout: 'red:square,blue:circle', shapesCount: 50_000, cnn: '16,32,64', hidden: 256, embed: 64, batch: 32, steps: 6000, evalEvery: 500,
        valImages: 256, testImages: null, beamImages: 1000, beam: 3, gallery: { test: 8, compositional: 4 },
      };
  if (steps !== undefined) {
    // A trial run (tests): about four curve points, and small evaluations.
    plan.steps = steps;
    plan.evalEvery = Math.max(1, Math.floor(steps / 4));
    plan.valImages = Math.min(plan.valImages, 32);
    plan.testImages = Math.min(plan.testImages ?? Infinity, 32);
    plan.beamImages = Math.min(plan.beamImages, 8);
  }
  return plan;
}

export interface CurvePoint {
  step: number;
  /** Mean training loss of the steps since the previous point, nats per token. */
  trainLoss: number;
  valLoss: number;
  bleu4: number;
  accuracy: number;
}
