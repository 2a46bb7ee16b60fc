package fenced

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/raftlease/raftlease/jepsen/checker"
	"github.com/raftlease/raftlease/jepsen/history"
)

func TestRegisterRules(t *testing.T) {
	rec := history.NewRecorder(nil)
	r := NewRegister(rec)
	steps := []struct {
		req  WriteRequest
		want bool
	}{
		{WriteRequest{Writer: "p1", Token: 3, Fenced: true}, true},
		{WriteRequest{Writer: "p1", Token: 3, Fenced: true}, true},  // equal: accepted
		{WriteRequest{Writer: "p2", Token: 5, Fenced: true}, true},  // higher
		{WriteRequest{Writer: "p1", Token: 3, Fenced: true}, false}, // stale
		{WriteRequest{Writer: "p1", Token: 3, Fenced: false}, true}, // unfenced: always
		{WriteRequest{Writer: "p2", Token: 5, Fenced: true}, true},  // unfenced did not move highest
	}
	for i, s := range steps {
		resp, err := r.Write(s.req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Accepted != s.want || resp.Index != int64(i+1) {
			t.Fatalf("step %d: %+v, want accepted=%t", i, resp, s.want)
		}
	}
	if r.Highest() != 5 {
		t.Fatalf("highest %d", r.Highest())
	}
	h := rec.History()
	if len(h.Writes) != len(steps) || h.Writes[3].Accepted || h.Writes[3].Highest != 5 {
		t.Fatalf("recorded %+v", h.Writes)
	}
	if _, err := r.Write(WriteRequest{Writer: "p1", Fenced: true}); err == nil {
		t.Fatal("token 0 accepted")
	}
	if _, err := r.Write(WriteRequest{Token: 1, Fenced: true}); err == nil {
		t.Fatal("empty writer accepted")
	}
}

// TestServerConcurrentWriters runs many writers at once against the HTTP
// server; the recorded history must agree with every answer and pass the
// fenced-exclusion checker, and the register's order must be a total one.
func TestServerConcurrentWriters(t *testing.T) {
	rec := history.NewRecorder(nil)
	srv := NewServer(rec)
	url, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	const writers, perWriter = 8, 60
	type answer struct {
		req  WriteRequest
		resp WriteResponse
	}
	answers := make([][]answer, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &Client{URL: url}
			writer := string(rune('a' + w))
			for i := range perWriter {
				// tokens unique per writer, interleaving across writers
				req := WriteRequest{Writer: writer, Token: uint64(1 + w + writers*(i/10)), Fenced: i%5 != 4, Seq: int64(i + 1)}
				resp, err := c.Write(context.Background(), req)
				if err != nil {
					t.Error(err)
					return
				}
				answers[w] = append(answers[w], answer{req, resp})
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	h := rec.History()
	if len(h.Writes) != writers*perWriter {
		t.Fatalf("recorded %d writes, want %d", len(h.Writes), writers*perWriter)
	}
	byIndex := map[int64]history.FencedWrite{}
	for i, w := range h.Writes {
		if w.Index != int64(i+1) {
			t.Fatalf("write %d has index %d: the register order has a gap", i, w.Index)
		}
		byIndex[w.Index] = w
	}
	stale := 0
	for _, as := range answers {
		for _, a := range as {
			w := byIndex[a.resp.Index]
			if w.Writer != a.req.Writer || w.Token != a.req.Token || w.Seq != a.req.Seq || w.Accepted != a.resp.Accepted {
				t.Fatalf("answer %+v for %+v, recorded %+v", a.resp, a.req, w)
			}
			if !a.resp.Accepted {
				stale++
			}
		}
	}
	v := checker.FencedExclusion(h, checker.Options{})
	if !v.Valid {
		t.Fatalf("fenced exclusion: %+v", v)
	}
	if int(v.Counters["stale_rejected"]) != stale {
		t.Fatalf("checker counted %d stale, answers say %d", v.Counters["stale_rejected"], stale)
	}
	t.Logf("%d writes, %d stale rejected, highest %d", len(h.Writes), stale, srv.Register.Highest())
}

func TestServerBadRequests(t *testing.T) {
	rec := history.NewRecorder(nil)
	srv := NewServer(rec)
	url, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/write", `{"writer":"p1","token":0,"fenced":true}`, http.StatusBadRequest},
		{"POST", "/write", `{"writer":"p1","token":1,"bogus":1}`, http.StatusBadRequest},
		{"POST", "/write", `not json`, http.StatusBadRequest},
		{"GET", "/write", ``, http.StatusMethodNotAllowed},
		{"POST", "/other", `{}`, http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tc.method, url+tc.path, strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s %s: %d, want %d", tc.method, tc.path, tc.body, resp.StatusCode, tc.status)
		}
	}
	if n := len(rec.History().Writes); n != 0 {
		t.Fatalf("bad requests recorded: %d", n)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
}
