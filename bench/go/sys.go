// SPDX-License-Identifier: MIT
// Blocking system calls: syscall.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// syscall: procs 1. The main task does a raw read(2) on a blocking pipe that
// is not in the poller; another process, started first, writes one byte
// into it warm_ms + delay_ms later (/bin/sh -c 'sleep S; printf x'). A
// counting task loops (50 LCG steps, then a yield) and records the longest
// gap between two iterations; it runs alone for warm_ms (main sleeps) so
// the runtime is in its steady state when the read begins. Value: that gap
// in ms; check: bytes read (1, and it is "x").
func benchSyscall(p *params) {
	delay := p.int("delay_ms", 500)
	warm := p.int("warm_ms", 100)
	p.procsDefault(1)
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err != nil {
		fail("pipe2: %v", err)
	}
	w := os.NewFile(uintptr(fds[1]), "pipe-w") // blocking: stays out of the poller
	cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf("sleep %.3f; printf x", float64(warm+delay)/1e3))
	cmd.Stdout = w
	if err := cmd.Start(); err != nil {
		fail("start writer: %v", err)
	}
	w.Close()

	var done uint32
	var maxGap, iters int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		x := uint64(1)
		prev := time.Now()
		for atomic.LoadUint32(&done) == 0 {
			for k := 0; k < 50; k++ {
				x = x*6364136223846793005 + 1442695040888963407
			}
			runtime.Gosched()
			now := time.Now()
			if g := int64(now.Sub(prev)); g > maxGap {
				maxGap = g
			}
			prev = now
			iters++
		}
		spinSink = x
		wg.Done()
	}()
	time.Sleep(time.Duration(warm) * time.Millisecond)

	buf := make([]byte, 8)
	t0 := time.Now()
	got, err := syscall.Read(fds[0], buf)
	readTime := time.Since(t0)
	atomic.StoreUint32(&done, 1)
	wg.Wait()
	cmd.Wait()
	syscall.Close(fds[0])
	ok := err == nil && got == 1 && buf[0] == 'x' && iters > 0 &&
		readTime > time.Duration(delay)*time.Millisecond/2
	emit(1, "max_stall", msOf(maxGap), "ms", "lower", int64(got), ok)
}
