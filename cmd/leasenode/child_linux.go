package main

import "syscall"

// childSysProcAttr puts CMD in its own process group and has the kernel
// kill it should `leasenode run` itself die (kill -9, OOM), so that CMD
// never outlives the process that fences it.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
