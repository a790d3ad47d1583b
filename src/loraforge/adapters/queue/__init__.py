"""Job queues: how workers learn that there is work (the jobs table is the source of truth)."""
