// SPDX-License-Identifier: MIT
// Network: echo.
package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"
)

// echo: a TCP echo server and conns clients in one process over loopback
// (TCP_NODELAY, Go's default). All clients connect first; then each does
// rounds round trips of 64 bytes (client id and round in the payload),
// timing each and checking every echoed byte. Values: round trips per
// second over the rounds phase, latency p50 and p99 in µs; check: round
// trips that came back intact (must be conns*rounds).
func benchEcho(p *params) {
	conns := p.int("conns", 100)
	rounds := p.int("rounds", 2000)
	size := p.int("size", 64)
	p.procsDefault(2)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen: %v", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				buf := make([]byte, size)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						break
					}
					if _, err := c.Write(buf); err != nil {
						break
					}
				}
				c.Close()
			}(c)
		}
	}()

	lat := make([]int64, conns*rounds)
	good := make([]int64, conns)
	var ready, finished sync.WaitGroup
	start := make(chan struct{})
	ready.Add(int(conns))
	finished.Add(int(conns))
	for id := int64(0); id < conns; id++ {
		go func(id int64) {
			defer finished.Done()
			c, err := net.Dial("tcp", ln.Addr().String())
			ready.Done()
			if err != nil {
				fail("dial: %v", err)
			}
			defer c.Close()
			out, in := make([]byte, size), make([]byte, size)
			<-start
			for r := int64(0); r < rounds; r++ {
				binary.LittleEndian.PutUint64(out[0:], uint64(id))
				binary.LittleEndian.PutUint64(out[8:], uint64(r))
				t0 := time.Now()
				if _, err := c.Write(out); err != nil {
					return
				}
				if _, err := io.ReadFull(c, in); err != nil {
					return
				}
				lat[id*rounds+r] = int64(time.Since(t0))
				if bytes.Equal(in, out) {
					good[id]++
				}
			}
		}(id)
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	finished.Wait()
	wall := time.Since(t0)
	ln.Close()
	var total int64
	for _, g := range good {
		total += g
	}
	n := conns * rounds
	ok := total == n
	emit(n, "roundtrips_per_s", float64(total)/wall.Seconds(), "rt/s", "higher", total, ok)
	emit(n, "latency_p50", usOf(percentile(lat, 0.50)), "us", "lower", total, ok)
	emit(n, "latency_p99", usOf(percentile(lat, 0.99)), "us", "lower", total, ok)
}
