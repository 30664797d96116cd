// SPDX-License-Identifier: MIT
// Channels: pingpong, buffered, select.
package main

import (
	"sync"
	"time"
)

// pingpong: main sends i, the echo task replies i+1 on a second channel;
// every reply is checked. Value: ns per round trip.
func benchPingpong(p *params) {
	n := p.int("n", 1000000)
	p.procsDefault(1)
	ping, pong := make(chan int64), make(chan int64)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
	}()
	var good int64
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		ping <- i
		if <-pong == i+1 {
			good++
		}
	}
	wall := time.Since(t0)
	close(ping)
	emit(n, "ns_per_roundtrip", nsPer(wall, n), "ns", "lower", good, good == n)
}

// buffered: a producer sends 0..n-1 into a cap-128 channel, a consumer sums
// them. Value: ns per item; check: the sum.
func benchBuffered(p *params) {
	n := p.int("n", 10000000)
	capacity := p.int("cap", 128)
	p.procsDefault(2)
	ch := make(chan int64, capacity)
	var sum int64
	var wg sync.WaitGroup
	wg.Add(2)
	t0 := time.Now()
	go func() {
		for i := int64(0); i < n; i++ {
			ch <- i
		}
		wg.Done()
	}()
	go func() {
		var s int64
		for i := int64(0); i < n; i++ {
			s += <-ch
		}
		sum = s
		wg.Done()
	}()
	wg.Wait()
	wall := time.Since(t0)
	emit(n, "ns_per_item", nsPer(wall, n), "ns", "lower", sum, sum == n*(n-1)/2)
}

// select: 4 producers each send n/4 values on their own unbuffered channel;
// one task receives all n through a 4-way select. Producer k sends
// k*m .. k*m+m-1, so a value arriving on the wrong case is caught.
// Value: ns per message; check: the sum of every value received.
func benchSelect(p *params) {
	n := p.int("n", 1000000)
	p.procsDefault(2)
	const k = 4
	m := n / k
	n = m * k
	var chans [k]chan int64
	for i := range chans {
		chans[i] = make(chan int64)
	}
	var sum, misrouted int64
	var wg sync.WaitGroup
	wg.Add(k + 1)
	t0 := time.Now()
	for i := 0; i < k; i++ {
		go func(i int64) {
			for j := int64(0); j < m; j++ {
				chans[i] <- i*m + j
			}
			wg.Done()
		}(int64(i))
	}
	go func() {
		var s, bad int64
		for r := int64(0); r < n; r++ {
			var v, from int64
			select {
			case v = <-chans[0]:
				from = 0
			case v = <-chans[1]:
				from = 1
			case v = <-chans[2]:
				from = 2
			case v = <-chans[3]:
				from = 3
			}
			if v/m != from {
				bad++
			}
			s += v
		}
		sum, misrouted = s, bad
		wg.Done()
	}()
	wg.Wait()
	wall := time.Since(t0)
	emit(n, "ns_per_message", nsPer(wall, n), "ns", "lower", sum,
		sum == n*(n-1)/2 && misrouted == 0)
}
