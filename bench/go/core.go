// SPDX-License-Identifier: MIT
// Tasks: spawn, park_memory, yield.
package main

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	spawnRan int64
	spawnWG  sync.WaitGroup
)

func spawnTask() {
	atomic.AddInt64(&spawnRan, 1)
	spawnWG.Done()
}

// spawn: wall from the first `go` to the WaitGroup's return, per task.
func benchSpawn(p *params) {
	n := p.int("n", 1000000)
	p.procsDefault(0)
	spawnWG.Add(int(n))
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		go spawnTask()
	}
	spawnWG.Wait()
	wall := time.Since(t0)
	ran := atomic.LoadInt64(&spawnRan)
	emit(n, "ns_per_task", nsPer(wall, n), "ns", "lower", ran, ran == n)
}

// vmRSS returns the process's resident set in bytes (/proc/self/status).
func vmRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		fail("open /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "VmRSS:") {
			kb, err := strconv.ParseInt(strings.Fields(line[6:])[0], 10, 64)
			if err != nil {
				fail("VmRSS: %v", err)
			}
			return kb * 1024
		}
	}
	fail("no VmRSS in /proc/self/status")
	return 0
}

// park_memory: VmRSS delta after n tasks block on one channel receive.
func benchParkMemory(p *params) {
	n := p.int("n", 100000)
	p.procsDefault(0)
	ch := make(chan struct{})
	var parked, woke int64
	var wg sync.WaitGroup
	runtime.GC()
	rss0 := vmRSS()
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func() {
			atomic.AddInt64(&parked, 1)
			<-ch
			atomic.AddInt64(&woke, 1)
			wg.Done()
		}()
	}
	for atomic.LoadInt64(&parked) < n {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond) // the last ones reach the receive
	rss1 := vmRSS()
	close(ch)
	wg.Wait()
	w := atomic.LoadInt64(&woke)
	emit(n, "bytes_per_task", float64(rss1-rss0)/float64(n), "B", "lower", w, w == n)
}

var yieldCount [2]struct {
	n int64
	_ [56]byte // own cache line
}

func yielder(i int, n int64, wg *sync.WaitGroup) {
	for j := int64(0); j < n; j++ {
		yieldCount[i].n++
		runtime.Gosched()
	}
	wg.Done()
}

// yield: two tasks yielding n times each; ns per switch = wall / (2n).
func benchYield(p *params) {
	n := p.int("n", 5000000)
	p.procsDefault(1)
	var wg sync.WaitGroup
	wg.Add(2)
	t0 := time.Now()
	go yielder(0, n, &wg)
	go yielder(1, n, &wg)
	wg.Wait()
	wall := time.Since(t0)
	total := yieldCount[0].n + yieldCount[1].n
	emit(n, "ns_per_switch", nsPer(wall, 2*n), "ns", "lower", total, total == 2*n)
}
