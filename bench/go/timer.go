// SPDX-License-Identifier: MIT
// Time: sleep, timers, preempt.
package main

import (
	"sync"
	"sync/atomic"
	"time"
)

// sleep: n sleeps of dur_us each; overshoot = actual - requested.
// Values: overshoot p50 and p99 in µs; check: sleeps that did not return
// early (must be n).
func benchSleep(p *params) {
	n := p.int("n", 500)
	d := time.Duration(p.int("dur_us", 100)) * time.Microsecond
	p.procsDefault(0)
	over := make([]int64, 0, n)
	var notEarly int64
	for i := int64(0); i < n; i++ {
		t0 := time.Now()
		time.Sleep(d)
		o := int64(time.Since(t0) - d)
		if o >= 0 {
			notEarly++
		}
		over = append(over, o)
	}
	ok := notEarly == n
	emit(n, "overshoot_p50", usOf(percentile(over, 0.50)), "us", "lower", notEarly, ok)
	emit(n, "overshoot_p99", usOf(percentile(over, 0.99)), "us", "lower", notEarly, ok)
}

// timers: n tasks each sleep a pseudo-random 0..span_ms (LCG, seed 1) from
// their own start; lateness = wake - (start + d). Values: the max lateness,
// and the max over tasks whose deadline fell after the spawn loop ended.
// check: tasks woken not early (must be n).
func benchTimers(p *params) {
	n := p.int("n", 100000)
	span := p.int("span_ms", 1000) * int64(time.Millisecond)
	p.procsDefault(0)
	base := time.Now()
	deadline := make([]int64, n) // ns since base
	late := make([]int64, n)
	var notEarly int64
	var wg sync.WaitGroup
	wg.Add(int(n))
	seed := uint64(1)
	for i := int64(0); i < n; i++ {
		seed = seed*6364136223846793005 + 1442695040888963407
		d := int64((seed >> 33) % uint64(span))
		go func(i, d int64) {
			start := int64(time.Since(base))
			time.Sleep(time.Duration(d))
			l := int64(time.Since(base)) - start - d
			deadline[i], late[i] = start+d, l
			if l >= 0 {
				atomic.AddInt64(&notEarly, 1)
			}
			wg.Done()
		}(i, d)
	}
	spawnEnd := int64(time.Since(base))
	wg.Wait()
	var maxAll, maxAfter int64
	for i := range late {
		if late[i] > maxAll {
			maxAll = late[i]
		}
		if deadline[i] >= spawnEnd && late[i] > maxAfter {
			maxAfter = late[i]
		}
	}
	ok := notEarly == n
	emit(n, "max_lateness", msOf(maxAll), "ms", "lower", notEarly, ok)
	emit(n, "max_lateness_after_spawn", msOf(maxAfter), "ms", "lower", notEarly, ok)
}

var (
	spinStop  uint32
	spinIters uint64
	spinSink  uint64
)

// spin is the tight loop: no calls inside (atomic.LoadUint32 is a plain
// MOV on amd64; see `go tool objdump -s main.spin`), so only asynchronous
// preemption can take the proc from it.
//
//go:noinline
func spin(wg *sync.WaitGroup) {
	x, i := uint64(1), uint64(0)
	for atomic.LoadUint32(&spinStop) == 0 {
		x = x*6364136223846793005 + 1442695040888963407
		i++
	}
	spinIters, spinSink = i, x
	wg.Done()
}

// preempt: procs 1; the main task sleeps dur_us n times while a tight loop
// runs beside it. Values: lateness (actual - requested) p50 and max in ms;
// check: sleeps completed (must be n, and the loop must have run).
func benchPreempt(p *params) {
	n := p.int("n", 50)
	d := time.Duration(p.int("dur_us", 1000)) * time.Microsecond
	p.procsDefault(1)
	var wg sync.WaitGroup
	wg.Add(1)
	go spin(&wg)
	late := make([]int64, 0, n)
	for i := int64(0); i < n; i++ {
		t0 := time.Now()
		time.Sleep(d)
		late = append(late, int64(time.Since(t0)-d))
	}
	atomic.StoreUint32(&spinStop, 1)
	wg.Wait()
	done := int64(len(late))
	ok := done == n && spinIters > 0
	emit(n, "lateness_p50", msOf(percentile(late, 0.50)), "ms", "lower", done, ok)
	emit(n, "lateness_max", msOf(percentile(late, 1.0)), "ms", "lower", done, ok)
}
