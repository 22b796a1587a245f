//go:build !linux

package main

import "syscall"

// sockSend writes p to the socket fd (non-blocking, as Go's sockets are).
func sockSend(fd uintptr, p []byte) (int, error) {
	return syscall.Write(int(fd), p)
}
