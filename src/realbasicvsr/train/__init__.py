"""Training: configs (`config`), data (`data`, `prepare`), losses, one step (`step`), the loop (`loop.train`),
DDP plumbing (`dist`), checkpoints (`state`), logging (`log`), validation and export. Imported on demand only."""
