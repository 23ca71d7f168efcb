// One clock for every relative time on screen ("5 seconds ago"): format.js reads `now()`, so
// anything rendered with timeAgo re-renders when the clock ticks. One timer for the whole tab,
// not one per widget.

const TICK_MS = 5000;

const clock = $state({ now: Date.now() });

setInterval(() => {
  clock.now = Date.now();
}, TICK_MS);

/** The current time in ms, as of the last tick; reading it subscribes the caller to ticks. */
export function now() {
  return clock.now;
}
