package skewclock

import (
	"testing"
	"time"
)

func TestRate(t *testing.T) {
	c := New()
	c.SetRate(2)
	a := c.Now()
	time.Sleep(50 * time.Millisecond)
	if d := c.Now().Sub(a); d < 95*time.Millisecond || d > 300*time.Millisecond {
		t.Fatalf("at rate 2, 50ms of real time read as %v", d)
	}
	b := c.Now()
	c.SetRate(1)
	if c.Now().Before(b) {
		t.Fatal("the clock went back at a rate change")
	}
	c.SetRate(0)
	if c.Rate() != 1 {
		t.Fatalf("rate %v after SetRate(0)", c.Rate())
	}
	c.SetRate(4)
	start := time.Now()
	<-c.NewTimer(200 * time.Millisecond).C()
	if real := time.Since(start); real > 150*time.Millisecond {
		t.Fatalf("a 200ms timer at rate 4 took %v of real time", real)
	}
}
