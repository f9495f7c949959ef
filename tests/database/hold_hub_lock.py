"""A stand-in for the hub's start, as its configuration does it: `python -m tests.database.hold_hub_lock URL`
takes the hub lock (jovial.hub_lock; quicker than the hub: a check every second, given 2 s, and a
lease of 6 s), prints HELD, and lives until killed."""

import logging
import sys
import time

from jovial.hub_lock import HubLock

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
HubLock(sys.argv[1], logging.getLogger("hub"), check_every=1, check_timeout=2, lease=6, wait_note_every=2).hold()
print("HELD", flush=True)
while True:
    time.sleep(60)
