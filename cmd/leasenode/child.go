package main

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// Signals `leasenode run` forwards to CMD's process group.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// child is CMD of `leasenode run`, in a process group of its own so that a
// stop reaches whatever it started.
type child struct {
	cmd   *exec.Cmd
	done  chan struct{} // closed once CMD exited and was reaped
	state *os.ProcessState
}

// startChild starts argv with env, sharing run's stdout and stderr (and its
// stdin, unless that is a terminal, which a background process group
// cannot read).
func startChild(argv []string, env []string) (*child, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if st, err := os.Stdin.Stat(); err == nil && st.Mode()&os.ModeCharDevice == 0 {
		cmd.Stdin = os.Stdin
	}
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		c.state = cmd.ProcessState
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// signal sends sig to CMD's process group.
func (c *child) signal(sig os.Signal) {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return
	}
	if err := syscall.Kill(-c.pid(), s); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = c.cmd.Process.Signal(sig)
	}
}

// killGroup kills what is left of CMD's process group once CMD is gone.
func (c *child) killGroup() {
	_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
}

// exitStatus is CMD's exit status, 128+N when signal N killed it. Call it
// after done is closed.
func (c *child) exitStatus() int {
	if c.state == nil {
		return exitOther
	}
	if ws, ok := c.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return c.state.ExitCode()
}
