package watch_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives its test: every
// subscriber goroutine must end when its ctx ends or its hub closes.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
