package driver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one child process the driver runs (a leasenode agent or a
// participant): started again with the same arguments after a kill, its
// output appended to one log file across restarts.
type Proc struct {
	Name    string
	Path    string
	Args    []string
	LogPath string
	// Wrap, when set, is put before Path (ip netns exec NS).
	Wrap []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	paused  bool
	starts  int
}

// Start starts the process. It fails when it is already running.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.done) {
		return fmt.Errorf("driver: start %s: already running", p.Name)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("driver: %w", err)
	}
	p.starts++
	argv := append(append(append([]string{}, p.Wrap...), p.Path), p.Args...)
	fmt.Fprintf(logf, "==== jepsen driver: start %d of %s: %s\n", p.starts, p.Name, strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("driver: start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.paused, p.exitErr = cmd, done, false, nil
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Starts counts the starts so far.
func (p *Proc) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// Running reports whether the process runs (a paused one does).
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !isClosed(p.done)
}

// Paused reports whether the process is stopped by SIGSTOP.
func (p *Proc) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused && p.cmd != nil && !isClosed(p.done)
}

// Exited returns a channel closed when the current process has exited
// (closed already when none runs).
func (p *Proc) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return p.done
}

// ExitErr is the last process's exit error (nil: status 0 or running).
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

func (p *Proc) signal(sig syscall.Signal) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || isClosed(p.done) {
		return false
	}
	if p.paused && sig != syscall.SIGCONT && sig != syscall.SIGKILL && sig != syscall.SIGSTOP {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		p.paused = false
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return false
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	return true
}

// Kill sends SIGKILL and waits for the process to exit (at most 10 s).
func (p *Proc) Kill() error {
	if !p.signal(syscall.SIGKILL) {
		return nil
	}
	select {
	case <-p.Exited():
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("driver: %s did not exit after SIGKILL", p.Name)
	}
}

// Term sends SIGTERM and waits for the process to exit. After timeout it
// sends SIGQUIT, so that a Go process writes every goroutine's stack to
// its log (the evidence of what hung), and SIGKILL 2 s later. It reports
// whether the process exited by itself.
func (p *Proc) Term(timeout time.Duration) (graceful bool, err error) {
	if !p.signal(syscall.SIGTERM) {
		return true, nil
	}
	select {
	case <-p.Exited():
		return true, nil
	case <-time.After(timeout):
	}
	p.signal(syscall.SIGQUIT)
	select {
	case <-p.Exited():
		return false, nil
	case <-time.After(2 * time.Second):
		return false, p.Kill()
	}
}

// Pause sends SIGSTOP; Resume sends SIGCONT.
func (p *Proc) Pause() error {
	if !p.signal(syscall.SIGSTOP) {
		return errors.New("driver: " + p.Name + " is not running")
	}
	return nil
}

// Resume continues a paused process; it does nothing to one not running.
func (p *Proc) Resume() { p.signal(syscall.SIGCONT) }

// Pid returns the process id, or 0.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || isClosed(p.done) {
		return 0
	}
	return p.cmd.Process.Pid
}

func isClosed(ch chan struct{}) bool {
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// cleanEnv is the environment without LEASENODE_ variables, so the
// operator's settings never leak into the agents.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LEASENODE_") {
			out = append(out, kv)
		}
	}
	return out
}
