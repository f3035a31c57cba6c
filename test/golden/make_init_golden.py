#!/usr/bin/python3
"""PyTorch golden value for `gradpool train --init` (test/unit/init.test.ts, test/e2e/init.test.ts):
the first step's loss of a run started from a PyTorch-written model file.

How to run (from the repository root, with Debian's PyTorch 1.13 -- /usr/bin/python3):

    /usr/bin/python3 test/golden/make_init_golden.py

What it produces:
  test/golden/init-first-step.safetensors  a 2-layer nn.Embedding + nn.LSTM + nn.Linear (E=5, H=6,
                                           the 11-character vocabulary of make_golden.py), PyTorch's
                                           default init under torch.manual_seed(SEED), float32, with
                                           gradpool metadata (written by make_golden.py's writer)
  test/golden/init-first-step.json         T, B, the data file (text.txt), "tokens": step 0's batch
                                           (time-major, (T+1)*B, row t*B+b) and "loss": its mean
                                           cross-entropy in nats from a zero state

Step 0's batch is cut the way gradpool does it (coordinator/data.ts): the text's characters
as ids of the file's vocabulary; the train/validation split of splitTrainVal (50 equal
contiguous blocks, the last taking the remainder; block i is validation when i % 10 == 9);
the N training ids as B streams of L = N // B ids (stream b = train[b*L:(b+1)*L]); chunk 0 is
ids 0..T of every stream: inputs rows 0..T-1, targets rows 1..T. The loss is computed in
float64 from the float32 weights on disk.
"""

import json
import os

import torch
import torch.nn.functional as F

from make_golden import HERE, VOCAB, CharModel, gradpool_metadata, load_model, write_safetensors

SEED = 2026
LAYERS, EMBED, HIDDEN = 2, 5, 6
T, B = 8, 3
NAME = 'init-first-step'
DATA = 'text.txt'


def split_train(ids, blocks=50, every=10):
    """gradpool's splitTrainVal, the training part."""
    size = len(ids) // blocks
    train = []
    for i in range(blocks):
        block = ids[i * size:(len(ids) if i == blocks - 1 else (i + 1) * size)]
        if i % every != every - 1:
            train.extend(block)
    return train


def first_batch(train):
    """StreamBatcher.batch(0): (T+1, B), row t holds id t of every stream."""
    L = len(train) // B
    assert L - 1 >= T, f'{len(train)} training ids cannot give B={B} streams of T+1={T + 1}'
    return torch.tensor([[train[b * L + t] for b in range(B)] for t in range(T + 1)], dtype=torch.long)


def main():
    torch.manual_seed(SEED)
    model32 = CharModel('lstm', len(VOCAB), EMBED, HIDDEN, LAYERS)
    tensors = {k: v.detach().numpy().copy() for k, v in model32.state_dict().items()}
    metadata = gradpool_metadata('lstm')
    metadata['gradpool.config'] = json.dumps({'cell': 'lstm', 'layers': LAYERS, 'hidden': HIDDEN, 'embed': EMBED})
    path = os.path.join(HERE, f'{NAME}.safetensors')
    write_safetensors(path, tensors, metadata)
    model, vocab = load_model(path)  # float64, from exactly the float32 values on disk

    with open(os.path.join(HERE, DATA), encoding='utf-8') as f:
        text = f.read()
    index = {ch: i for i, ch in enumerate(vocab)}
    tokens = first_batch(split_train([index[ch] for ch in text]))
    with torch.no_grad():
        logits, _ = model(tokens[:-1])  # zero initial state: chunk 0 starts the streams
        loss = F.cross_entropy(logits.reshape(T * B, len(vocab)), tokens[1:].reshape(T * B), reduction='mean').item()
    golden = {'file': f'{NAME}.safetensors', 'data': DATA, 'T': T, 'B': B, 'tokens': tokens.reshape(-1).tolist(), 'loss': loss}
    with open(os.path.join(HERE, f'{NAME}.json'), 'w') as f:
        json.dump(golden, f, indent=1)
        f.write('\n')
    print(f'wrote {path} and {NAME}.json: first-step loss {loss:.10f}')


if __name__ == '__main__':
    torch.set_num_threads(1)
    main()
