"""One trading cycle of one bot for one slot, one file per step:

- `lock`: the bot's Redis lock, held by its cycle or by a close-now (`workers/close.py`), never both;
- `runner`: the process's gate and the soft time limit, under the bot's lock (`CycleEnv.run`);
- `run`: claim → credentials → market → reconcile → decide → orders → finish (`Run`);
- `orders`: the order a decision makes, stored as an intent, sent once, looked up when its answer is lost;
- `reconcile`: orders left without a final state, and positions the exchange closed by itself.

Safety rules, in the order they apply:
- A per-bot Redis lock: two cycles of one bot never overlap (the lock expires after the hard limit,
  so a crashed worker cannot hold it forever).
- `ledger.claim_cycle`: the (bot, slot) row is unique; a completed or failed slot is never run again,
  a slot left `running` by a crash is resumed.
- Reconcile first: orders without a final state are looked up on the exchange by client order id,
  positions are compared with the exchange's, and a position the exchange closed (stop-loss,
  take-profit) is closed here with its PnL.
- An order is stored as an intent before it is sent, under a client order id made from bot, slot,
  symbol and leg; a lost answer is resolved by looking it up, never by sending again.
- Exchange errors map to actions (workers.exchanges.errors): pause the bot, back off, skip and
  notify, or retry reads.
- A soft time limit abandons the cycle and records it as failed; nothing one bot does raises into
  another's cycle.
- The run collects its events and publishes them once, when it finishes.
"""

from workers.cycle.run import CycleReport, ReportStatus
from workers.cycle.runner import CycleEnv, slot_of

__all__ = ["CycleEnv", "CycleReport", "ReportStatus", "slot_of"]
