//go:build race

package testutil

// raceEnabled: this test binary runs with the race detector, and so do the
// binaries it builds for tests.
const raceEnabled = true
