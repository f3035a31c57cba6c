// Types of the plain-JS helper checkpoint-writer.mjs (it also runs as a child process).
import type { CheckpointMsg } from '../../proto/codec.js';

export function checkpointAt(step: number, P: number): CheckpointMsg;
