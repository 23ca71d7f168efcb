package postgres

// SpillLockClass lets the tests hold a spill's lock as a publish in flight does.
const SpillLockClass = spillLockClass
