//go:build !unix

package history

import "time"

var start = time.Now()

// Now returns monotonic nanoseconds since this process started. Only on
// unix systems is the reading system-wide (CLOCK_MONOTONIC); elsewhere
// histories of different processes do not line up.
func Now() int64 { return int64(time.Since(start)) }
