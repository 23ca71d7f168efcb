//go:build !race

// Package race tells tests whether the race detector is on: it changes how many allocations
// a path makes, so allocation budgets measured without it need their own figures with it.
package race

// Enabled reports that this build has the race detector.
const Enabled = false
