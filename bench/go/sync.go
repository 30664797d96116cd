// SPDX-License-Identifier: MIT
// Locks and work distribution: mutex, workers.
package main

import (
	"sync"
	"time"
)

// mutex: 4 tasks each do n/4 lock; counter++; unlock on one mutex.
// Value: ns per lock+unlock pair (wall / n); check: the counter.
func benchMutex(p *params) {
	n := p.int("n", 10000000)
	tasks := p.int("tasks", 4)
	p.procsDefault(2)
	per := n / tasks
	n = per * tasks
	var mu sync.Mutex
	var counter int64
	var wg sync.WaitGroup
	wg.Add(int(tasks))
	t0 := time.Now()
	for t := int64(0); t < tasks; t++ {
		go func() {
			for i := int64(0); i < per; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	emit(n, "ns_per_op", nsPer(wall, n), "ns", "lower", counter, counter == n)
}

// job is one unit of work: 137 rounds of xorshift64 (~195 ns on the
// reference VM). Seeds are 1..n (0 is a fixed point of xorshift).
func job(x uint64) uint64 {
	for r := 0; r < 137; r++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// workers: a channel pre-filled with n job seeds (and closed) before the
// clock starts; 8 workers drain it. Value: jobs per second; check: the sum
// of every job's result, compared with a sequential run after timing.
func benchWorkers(p *params) {
	n := p.int("n", 1000000)
	workers := p.int("workers", 8)
	p.procsDefault(0)
	jobs := make(chan uint64, n)
	for i := int64(1); i <= n; i++ {
		jobs <- uint64(i)
	}
	close(jobs)
	sums := make([]struct {
		s uint64
		c int64
		_ [48]byte
	}, workers)
	var wg sync.WaitGroup
	wg.Add(int(workers))
	t0 := time.Now()
	for w := int64(0); w < workers; w++ {
		go func(w int64) {
			var s uint64
			var c int64
			for seed := range jobs {
				s += job(seed)
				c++
			}
			sums[w].s, sums[w].c = s, c
			wg.Done()
		}(w)
	}
	wg.Wait()
	wall := time.Since(t0)
	var got, want uint64
	var count int64
	for _, ws := range sums {
		got += ws.s
		count += ws.c
	}
	for i := int64(1); i <= n; i++ {
		want += job(uint64(i))
	}
	emit(n, "jobs_per_s", float64(n)/wall.Seconds(), "jobs/s", "higher",
		int64(got), got == want && count == n)
}
