//go:build unix

package history

import "golang.org/x/sys/unix"

// Now returns the system-wide monotonic clock (CLOCK_MONOTONIC) in
// nanoseconds. It never reads wall time, so steps of the wall clock (and
// the harness's own clock-jump nemesis) do not disturb it, and readings
// taken by different processes on one machine are comparable.
func Now() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		// CLOCK_MONOTONIC is always present on the systems we run on.
		panic("history: clock_gettime(CLOCK_MONOTONIC): " + err.Error())
	}
	return ts.Nano()
}
