// Cell lookup by name.

import type { CellName } from '../config.js';
import type { Cell } from '../layer.js';
import { gruCell } from './gru.js';
import { gruResetAfterCell } from './gru_reset_after.js';
import { lstmCell } from './lstm.js';
import { rnnCell } from './rnn.js';

export function cellFor(name: CellName): Cell {
  switch (name) {
    case 'rnn':
      return rnnCell();
    case 'lstm':
    case 'lstm-1997':
    case 'lstm-peephole':
      return lstmCell(name);
    case 'gru':
      return gruCell();
    case 'gru-reset-after':
      return gruResetAfterCell();
  }
}
