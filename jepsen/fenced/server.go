package fenced

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server serves a Register over HTTP on a loopback address.
type Server struct {
	Register *Register

	mu   sync.Mutex
	srv  *http.Server
	done chan struct{}
	url  string
}

// NewServer returns a server for a new register recording into sink.
func NewServer(sink Sink) *Server { return &Server{Register: NewRegister(sink)} }

// Listen starts serving on addr ("127.0.0.1:0" picks a free port) and
// returns the base URL ("http://127.0.0.1:PORT") participants write to.
func (s *Server) Listen(addr string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return "", errors.New("fenced: server already listening")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("fenced: %w", err)
	}
	s.srv = &http.Server{Handler: s.Register, ReadHeaderTimeout: 5 * time.Second}
	s.done = make(chan struct{})
	s.url = "http://" + ln.Addr().String()
	srv, done := s.srv, s.done
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	return s.url, nil
}

// URL returns the base URL, or "" before Listen.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Shutdown stops accepting writes and waits, until ctx ends, for the
// writes in flight to be answered. It is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		srv.Close()
	}
	<-done
	return err
}

// Close stops the server at once, closing open connections, and waits for
// its accept loop. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Client writes to a fenced register; participants use it.
type Client struct {
	// URL is the register's base URL.
	URL string
	// HTTP is the client to use; nil means http.DefaultClient.
	HTTP *http.Client
}

// Write sends one write and returns the register's answer. A rejected
// (stale) write is not an error: check WriteResponse.Accepted.
func (c *Client) Write(ctx context.Context, req WriteRequest) (WriteResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return WriteResponse{}, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"/write", bytes.NewReader(body))
	if err != nil {
		return WriteResponse{}, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return WriteResponse{}, fmt.Errorf("fenced: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return WriteResponse{}, fmt.Errorf("fenced: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return WriteResponse{}, fmt.Errorf("fenced: %s: %s", resp.Status, bytes.TrimSpace(data))
	}
	var out WriteResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return WriteResponse{}, fmt.Errorf("fenced: bad response: %w", err)
	}
	return out, nil
}
