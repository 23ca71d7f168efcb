package engine

// SlowStart is a new webhook's first window: how many of its requests may be in flight.
const SlowStart = slowStart
