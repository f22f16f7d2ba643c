package lease

// StopRenewing halts renewals without touching Redis, as if the holder
// stalled.
func (le *Lease) StopRenewing() { le.stopRenewing() }
