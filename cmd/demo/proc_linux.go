package main

import "syscall"

// sysProcAttr has the kernel kill the demo's processes if the demo itself
// dies (kill -9), so none is left behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
